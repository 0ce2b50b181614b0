package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// standaloneFileConfig writes dir/c.yaml: standalone identity, the file
// store at creds, one route; it returns its path.
func standaloneFileConfig(t *testing.T, dir, creds string) string {
	t.Helper()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {store: file, file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AK, secret: SK, user_id: u, project_id: p}\n"), 0o600)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("identity: {mode: standalone}\ncredentials: {file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	badCreds := filepath.Join(dir, "bad-creds.yaml")
	os.WriteFile(badCreds, []byte("identity: {mode: standalone}\ncredentials: {file: "+filepath.Join(dir, "absent.yaml")+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	invalid := filepath.Join(dir, "invalid.yaml")
	os.WriteFile(invalid, []byte("listen: nope\nbogus: 1\n"), 0o600)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, 2, "", "Usage: ec2proxy"}, // a usage error: on stderr
		{"help", []string{"-h"}, 0, "Usage: ec2proxy", ""},
		{"help", []string{"help"}, 0, "check-config", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "ec2proxy ", ""},
		{"check-config ok", []string{"check-config", "-config", good}, 0, "OK (listen :8773, identity standalone, credentials file, 1 route(s))", ""},
		{"check-config invalid", []string{"check-config", "-config", invalid}, 1, "", "bogus: line 2: field bogus not found"},
		{"check-config reports all", []string{"check-config", "-config", invalid}, 1, "", `listen: "nope" is not host:port`},
		{"check-config missing credentials file", []string{"check-config", "-config", badCreds}, 1, "", "absent.yaml: no such file"},
		{"check-config no file", []string{"check-config"}, 1, "", "pass -config FILE"},
		{"bad flag", []string{"check-config", "-nope"}, 2, "", "flag provided but not defined"},
		{"extra argument", []string{"serve", "-config", good, "extra"}, 2, "", `unexpected argument "extra"`},
		{"serve without config", []string{"serve"}, 1, "", "no configuration"},
		// Named by the subcommand that failed, not the group alone.
		{"creds subcommand without config", []string{"creds", "disable", "AK"}, 1, "", "ec2proxy creds disable: no configuration"},
		{"creds subcommand usage", []string{"creds", "disable"}, 2, "", "creds disable: give exactly one access key"},
	}
	t.Setenv("EC2PROXY_CONFIG", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// Found by a review: roles written with blanks after the commas are
// stored trimmed (as policy check reads them), ec2rc writes https:// when
// the proxy serves TLS, and a negative -presign is refused instead of
// sending the request.
func TestCLIFlagsReadAsMeant(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials: []\n"), 0o600)
	cfg := filepath.Join(dir, "tls.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"+
		"listen: 'ec2.example.com:8773'\nserver: {tls: {cert_file: /c.pem, key_file: /k.pem}}\n"), 0o600)

	if code, _, stderr := runCLI("creds", "create", "-config", cfg, "-access", "AKROLES", "-user-id", "u", "-project-id", "p", "-roles", "reader, member"); code != 0 {
		t.Fatalf("creds create: %d %s", code, stderr)
	}
	if code, stdout, stderr := runCLI("creds", "show", "-config", cfg, "-json", "AKROLES"); code != 0 || !strings.Contains(stdout, `"member"`) || strings.Contains(stdout, `" member"`) {
		t.Errorf("creds show: %d\n%s%s\nwant the roles reader and member, trimmed", code, stdout, stderr)
	}
	// The file store: running proxies watch the file (not cache_ttl), and
	// the CLI says when a change applies.
	if code, stdout, stderr := runCLI("creds", "disable", "-config", cfg, "AKROLES"); code != 0 || strings.Contains(stdout, "cache_ttl") || !strings.Contains(stderr, "within two seconds") {
		t.Errorf("creds disable (file store): %d\n%s%s\nwant the note on when it applies, not cache_ttl", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI("ec2rc", "-config", cfg, "-access", "AKROLES", "-o", "-"); code != 0 || !strings.Contains(stdout, "EC2_URL=https://ec2.example.com:8773/") {
		t.Errorf("ec2rc: %d\n%s%s\nwant EC2_URL=https://ec2.example.com:8773/", code, stdout, stderr)
	}
	if code, _, stderr := runCLI("sign", "-url", "http://127.0.0.1:9/", "-access", "AK", "-secret", "SK", "-sigv", "4", "-presign", "-5m", "Action=DescribeRegions"); code == 0 || !strings.Contains(stderr, "must be positive") {
		t.Errorf("sign -presign -5m: %d %s; want a refusal", code, stderr)
	}
	// Flags the request would ignore are refused (found by a review).
	sign := []string{"sign", "-url", "http://127.0.0.1:9/", "-access", "AK", "-secret", "SK", "-dry-run"}
	if code, _, stderr := runCLI(append(sign, "-presign", "5m", "-method", "POST", "Action=DescribeRegions")...); code != 2 || !strings.Contains(stderr, "presigned URL is a GET") {
		t.Errorf("sign -presign -method POST: %d %s; want a usage error", code, stderr)
	}
	if code, _, stderr := runCLI(append(sign, "-sha1", "Action=DescribeRegions")...); code != 2 || !strings.Contains(stderr, "-sha1 is for -sigv 2") {
		t.Errorf("sign -sha1 under SigV4: %d %s; want a usage error", code, stderr)
	}
	if code, stdout, stderr := runCLI(append(sign, "-sigv", "2", "-sha1", "Action=DescribeRegions")...); code != 0 || !strings.Contains(stdout+stderr, "HmacSHA1") {
		t.Errorf("sign -sigv 2 -sha1: %d %s %s", code, stdout, stderr)
	}
}

// A file store starts from nothing: creds create makes the file (0600),
// and an empty file is a store without credentials, not "EOF".
func TestFileStoreFromNothing(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	cfg := standaloneFileConfig(t, dir, creds)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("check-config with no credentials file: %d %s; want the missing file named", code, stderr)
	}
	if code, _, stderr := runCLI("creds", "create", "-config", cfg, "-access", "AKNEW", "-user-id", "u", "-project-id", "p"); code != 0 || !strings.Contains(stderr, "creating "+creds) {
		t.Fatalf("creds create on a missing file: %d %s", code, stderr)
	}
	if st, err := os.Stat(creds); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the new file: %v %v; want mode 0600", st, err)
	}
	if code, stdout, stderr := runCLI("creds", "list", "-config", cfg); code != 0 || !strings.Contains(stdout, "AKNEW") {
		t.Errorf("creds list: %d %s %s", code, stdout, stderr)
	}
	os.WriteFile(creds, nil, 0o600)
	if code, stdout, stderr := runCLI("check-config", "-config", cfg); code != 0 {
		t.Errorf("check-config with an empty credentials file: %d %s %s", code, stdout, stderr)
	}
}

// Help output is pasted into tickets: the keys from a sourced ec2rc.sh
// must not appear in it. Found by a review (they were the flags' defaults).
func TestSignHelpShowsNoSecret(t *testing.T) {
	t.Setenv("EC2_SECRET_KEY", "s3cr3t-from-ec2rc")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-from-aws")
	t.Setenv("EC2_URL", "http://127.0.0.1:9/")
	code, stdout, stderr := runCLI("sign", "-h")
	if strings.Contains(stdout+stderr, "s3cr3t") || !strings.Contains(stderr, "default $EC2_SECRET_KEY") {
		t.Errorf("sign -h: %d\n%s%s\nwant the variables named, no secret", code, stdout, stderr)
	}
	// The environment still supplies them when the flags are absent, and
	// then there is nothing to warn of.
	if code, stdout, stderr := runCLI("sign", "-access", "AK", "-dry-run", "Action=DescribeRegions"); code != 0 || !strings.Contains(stdout, "http://127.0.0.1:9/") || strings.Contains(stderr, "warning") {
		t.Errorf("sign -dry-run from the environment: %d\n%s%s", code, stdout, stderr)
	}
	// A secret on the command line shows in ps and the shell's history.
	if code, stdout, stderr := runCLI("sign", "-access", "AK", "-secret", "SK", "-dry-run", "Action=DescribeRegions"); code != 0 || !strings.Contains(stderr, "visible to other users") {
		t.Errorf("sign -secret: %d\n%s%s\nwant a warning", code, stdout, stderr)
	}
}

// check-config names every unusable file at once, each by its setting
// (found by a review: it stopped at the first, and some messages named
// only a path).
func TestCheckConfigListsEveryFileProblem(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	key := filepath.Join(dir, "secret.key")
	os.WriteFile(key, []byte("not hex\n"), 0o600)
	policyFile := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policyFile, []byte("default: rule:nope\n"), 0o600)
	cfg := filepath.Join(dir, "all-bad.yaml")
	os.WriteFile(cfg, []byte(`routes: [{path_prefix: /, backend: "https://nova.internal:8788"}]
credentials: {store: redis, encryption_key_file: `+key+`, old_encryption_key_files: [`+dir+`/old.key]}
redis: {addrs: ["127.0.0.1:6379"], password_file: `+dir+`/redis-password}
identity: {mode: keystone}
keystone:
  auth_url: https://keystone.internal:5000
  service_user: {name: ec2proxy, password_file: `+dir+`/ks-password, project_name: service}
  tls: {ca_file: `+dir+`/ks-ca.pem}
backend: {tls: {ca_file: `+dir+`/backend-ca.pem}}
server: {tls: {cert_file: `+dir+`/cert.pem, key_file: `+dir+`/key.pem}}
policy: {enabled: true, file: `+policyFile+`}
`), 0o600)
	code, _, stderr := runCLI("check-config", "-config", cfg)
	want := []string{
		"credentials.encryption_key_file: credstore: encryption key " + key + ": want 64 hex digits",
		"credentials.old_encryption_key_files[0]: credstore: encryption key: open " + dir + "/old.key: no such file",
		"redis.password_file: open " + dir + "/redis-password: no such file",
		"keystone.service_user.password_file: open " + dir + "/ks-password: no such file",
		"keystone.tls: ca_file: open " + dir + "/ks-ca.pem: no such file",
		"backend.tls: ca_file: open " + dir + "/backend-ca.pem: no such file",
		"server.tls: ",
		"policy.file: " + policyFile + ": invalid policy",
	}
	for _, w := range want {
		if code != 1 || !strings.Contains(stderr, w) {
			t.Errorf("check-config: %d, missing %q in:\n%s", code, w, stderr)
		}
	}
}
