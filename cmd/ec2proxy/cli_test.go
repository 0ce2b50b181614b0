package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
		{"no command", nil, 2, "Usage: ec2proxy", ""},
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
