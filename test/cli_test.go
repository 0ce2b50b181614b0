package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/ec2proxy once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ec2proxy-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ec2proxy")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/ec2proxy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cliConfig writes a configuration file naming the stack's Redis, prefix,
// key file and Keystone, for the CLI.
func (s *stack) cliConfig() string {
	s.t.Helper()
	c := s.cfg
	yaml := fmt.Sprintf(`identity: {mode: %s}
routes: [{path_prefix: /, backend: "http://127.0.0.1:9"}]
credentials: {store: redis, encryption_key_file: %q}
redis: {addrs: [%q], key_prefix: %q}
keystone:
  auth_url: %q
  service_user: {name: %q, password: %q, domain_name: %q, project_name: %q, project_domain_name: %q}
`, c.Identity.Mode, c.Credentials.EncryptionKeyFile, c.Redis.Addrs[0], c.Redis.KeyPrefix, c.Keystone.AuthURL,
		c.Keystone.ServiceUser.Name, c.Keystone.ServiceUser.Password, c.Keystone.ServiceUser.DomainName,
		c.Keystone.ServiceUser.ProjectName, c.Keystone.ServiceUser.ProjectDomainName)
	path := filepath.Join(s.t.TempDir(), "ec2proxy.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// cli runs the ec2proxy binary with a clean environment plus env.
func cli(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r cliResult) want(t *testing.T, code int, inOutput ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range inOutput {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", s, r.stdout, r.stderr)
		}
	}
}

// The credential life cycle through the CLI, each step checked through the
// proxy with a real client (standalone identity: no Keystone involved).
func TestCLICredentialLifecycle(t *testing.T) {
	s := startStack(t, func(c *configs.Config) {
		c.Identity.Mode = configs.ModeStandalone
		c.Credentials.CacheTTL, c.Credentials.NegativeTTL = 100*time.Millisecond, 100*time.Millisecond
	})
	conf := s.cliConfig()
	env := []string{"EC2PROXY_CONFIG=" + conf}
	boto := func(access, secret string) callResult {
		time.Sleep(150 * time.Millisecond) // past the proxy's cache TTL
		return s.call("--client", "boto2", "--endpoint", s.url+"/", "--access", access, "--secret", secret)
	}

	r := cli(t, env, "creds", "create", "-user-id", "u-1", "-project-id", "p-1", "-roles", "member", "-json")
	r.want(t, 0)
	var rec credstore.Record
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || len(rec.AccessKey) != 32 || len(rec.Secret) != 32 {
		t.Fatalf("create printed %q (%v)", r.stdout, err)
	}
	if got := boto(rec.AccessKey, rec.Secret); !got.OK {
		t.Fatalf("new credential refused: %+v", got)
	}
	if last, _ := s.backend.Last(); last.Header.Get("X-User-Id") != "u-1" || last.Header.Get("X-Roles") != "member" {
		t.Errorf("backend identity %v", last.Header)
	}

	r = cli(t, env, "creds", "list")
	r.want(t, 0, rec.AccessKey, "u-1", "p-1", "ACCESS KEY")
	if strings.Contains(r.stdout, rec.Secret) {
		t.Error("list shows the secret without -show-secrets")
	}
	cli(t, env, "creds", "list", "-show-secrets").want(t, 0, rec.Secret)
	cli(t, env, "creds", "show", rec.AccessKey, "-json").want(t, 0, `"user_id":"u-1"`)

	cli(t, env, "creds", "disable", rec.AccessKey).want(t, 0, "disabled "+rec.AccessKey)
	if got := boto(rec.AccessKey, rec.Secret); got.Code != "AuthFailure" {
		t.Errorf("disabled credential: %+v", got)
	}
	cli(t, env, "creds", "enable", rec.AccessKey).want(t, 0, "enabled")
	if got := boto(rec.AccessKey, rec.Secret); !got.OK {
		t.Errorf("re-enabled credential: %+v", got)
	}

	r = cli(t, env, "creds", "rotate", rec.AccessKey)
	r.want(t, 0, "secret key")
	newSecret := strings.TrimSpace(r.stdout[strings.Index(r.stdout, "secret key")+len("secret key"):])
	if got := boto(rec.AccessKey, rec.Secret); got.Code != "SignatureDoesNotMatch" {
		t.Errorf("old secret after rotate: %+v", got)
	}
	if got := boto(rec.AccessKey, newSecret); !got.OK {
		t.Errorf("new secret after rotate: %+v", got)
	}

	// ec2rc.sh: sourced in bash, a boto 2 call with nothing but its variables.
	rc := filepath.Join(t.TempDir(), "ec2rc.sh")
	cli(t, env, "ec2rc", "-access", rec.AccessKey, "-url", s.url+"/services/Cloud/", "-o", rc).want(t, 0, "mode 0600")
	if info, err := os.Stat(rc); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("ec2rc.sh: %v %v", err, info)
	}
	cli(t, env, "ec2rc", "-access", rec.AccessKey, "-o", rc).want(t, 1, "exists; use -force")
	out, err := exec.Command("bash", "-c", `set -e; source "$1"; env -i PATH=/usr/bin:/bin HOME=/tmp EC2_URL="$EC2_URL" EC2_ACCESS_KEY="$EC2_ACCESS_KEY" EC2_SECRET_KEY="$EC2_SECRET_KEY" /usr/bin/python3 clients/ec2call.py --client boto2 --endpoint "$EC2_URL"`, "bash", rc).Output()
	if err != nil || !strings.Contains(string(out), `"ok": true`) {
		t.Errorf("boto 2 with only the ec2rc.sh variables: %v %s", err, out)
	}
	// ec2proxy sign, with the same variables.
	signEnv := func(extra ...string) []string {
		return append([]string{"EC2_URL=" + s.url + "/", "EC2_ACCESS_KEY=" + rec.AccessKey, "EC2_SECRET_KEY=" + newSecret}, extra...)
	}
	cli(t, signEnv(), "sign", "Action=DescribeRegions").want(t, 0, "HTTP 200", "RegionOne")
	cli(t, signEnv(), "sign", "-sigv", "2", "-method", "GET", "Action=DescribeRegions").want(t, 0, "HTTP 200")
	cli(t, signEnv(), "sign", "-debug", "-secret", "wrong", "Action=DescribeRegions").want(t, 1, "visible to other users", "canonical request:", "HTTP 403", "SignatureDoesNotMatch")
	cli(t, signEnv(), "sign", "-dry-run", "Action=DescribeRegions").want(t, 0, "curl -sS -X POST", "Authorization: AWS4-HMAC-SHA256")
	cli(t, signEnv(), "sign").want(t, 2, "Action=NAME")

	cli(t, env, "creds", "delete", rec.AccessKey).want(t, 0, "deleted")
	if got := boto(rec.AccessKey, newSecret); got.Code != "AuthFailure" {
		t.Errorf("deleted credential: %+v", got)
	}

	// Bad input: clear message, non-zero exit.
	cli(t, env, "creds", "show", "nope").want(t, 1, "no credential with access key nope")
	cli(t, env, "creds", "delete", "nope").want(t, 1, "no credential with access key nope")
	cli(t, env, "creds", "create", "-user-id", "u").want(t, 2, "-user-id and -project-id are required")
	cli(t, env, "creds", "frob").want(t, 2, `unknown command "frob"`)
	cli(t, env, "creds", "show").want(t, 2, "give exactly one access key")
	cli(t, env, "ec2rc", "-access", "nope", "-o", "-").want(t, 1, "no credential with access key nope")
}

func TestCLIEncryptionKeys(t *testing.T) {
	s := startStack(t, nil)
	conf := s.cliConfig()
	env := []string{"EC2PROXY_CONFIG=" + conf}
	cli(t, env, "creds", "create", "-user-id", "u", "-project-id", "p").want(t, 0)

	// A malformed key file: refused with the reason, nothing changed.
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("0123"), 0o600)
	cli(t, append(env, "EC2PROXY_CREDENTIALS_ENCRYPTION_KEY_FILE="+bad), "creds", "list").want(t, 1, "64 hex digits")

	// Rotation: a new current key, the old one kept to decrypt, reencrypt.
	newKey := filepath.Join(t.TempDir(), "new.key")
	r := cli(t, nil, "creds", "genkey")
	r.want(t, 0)
	os.WriteFile(newKey, []byte(r.stdout), 0o600)
	rotated := append(env, "EC2PROXY_CREDENTIALS_ENCRYPTION_KEY_FILE="+newKey, "EC2PROXY_CREDENTIALS_OLD_ENCRYPTION_KEY_FILES="+s.cfg.Credentials.EncryptionKeyFile)
	cli(t, rotated, "creds", "reencrypt").want(t, 0, "re-sealed 1 secret(s)")
	cli(t, rotated, "creds", "reencrypt").want(t, 0, "re-sealed 0 secret(s)")
	onlyNew := append(env, "EC2PROXY_CREDENTIALS_ENCRYPTION_KEY_FILE="+newKey)
	cli(t, onlyNew, "creds", "list").want(t, 0, "u ")
	cli(t, env, "creds", "list").want(t, 1, "could not be read") // the old key alone no longer opens them
	// Re-sealing with a ring that cannot open a record: the others are
	// done, that one is named and left, and the exit code says so.
	// u2 is sealed with the first key, u's with the new one; a third key
	// is made current with only the first kept.
	cli(t, env, "creds", "create", "-user-id", "u2", "-project-id", "p").want(t, 0)
	third := filepath.Join(t.TempDir(), "third.key")
	cli(t, nil, "creds", "genkey", "-o", third).want(t, 0)
	withoutNew := append(env, "EC2PROXY_CREDENTIALS_ENCRYPTION_KEY_FILE="+third, "EC2PROXY_CREDENTIALS_OLD_ENCRYPTION_KEY_FILES="+s.cfg.Credentials.EncryptionKeyFile)
	cli(t, withoutNew, "creds", "reencrypt").want(t, 1, "re-sealed 1 secret(s)", "1 record(s) could not be read and were left as they are", "old_encryption_key_files")
	cli(t, onlyNew, "creds", "list").want(t, 1, "u ") // u's record untouched: the new key still opens it
}

// Keystone is the source of truth: a credential made with the openstack CLI
// works through the proxy after a sync, and stops after it is deleted in
// Keystone and synced again.
func TestCLISyncFromKeystone(t *testing.T) {
	s := startStack(t, func(c *configs.Config) {
		c.Credentials.CacheTTL, c.Credentials.NegativeTTL = 100*time.Millisecond, 100*time.Millisecond
	})
	ks := testenv.KeystoneEnv(t)
	conf := s.cliConfig()
	admin := []string{"EC2PROXY_CONFIG=" + conf, "OS_AUTH_URL=" + ks.URL + "/v3",
		"OS_USERNAME=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), "OS_PASSWORD=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"),
		"OS_PROJECT_NAME=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT"), "OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default"}
	demo := []string{"OS_AUTH_URL=" + ks.URL + "/v3", "OS_IDENTITY_API_VERSION=3", "OS_USERNAME=demo",
		"OS_PASSWORD=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO_PASSWORD"), "OS_PROJECT_NAME=demo",
		"OS_USER_DOMAIN_NAME=demo", "OS_PROJECT_DOMAIN_NAME=demo"}
	openstack := func(args ...string) []byte {
		cmd := exec.Command("/usr/bin/openstack", args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, demo...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openstack %v: %v %s", args, err, out)
		}
		return out
	}
	var created struct{ Access, Secret string }
	if err := json.Unmarshal(openstack("ec2", "credentials", "create", "-f", "json"), &created); err != nil || created.Access == "" {
		t.Fatalf("openstack ec2 credentials create: %v", err)
	}
	defer exec.Command("/usr/bin/openstack", "ec2", "credentials", "delete", created.Access).Run() // in case the test stops early

	// Keystone unreachable: clear message, non-zero exit, store unchanged.
	down := append(append([]string{}, admin...), "OS_AUTH_URL=http://127.0.0.1:1/v3")
	cli(t, down, "creds", "sync", "-keystone").want(t, 1, "listing Keystone's EC2 credentials")
	cli(t, admin, "creds", "list").want(t, 0)
	if r := cli(t, admin, "creds", "list"); strings.Contains(r.stdout, created.Access) {
		t.Fatal("a failed sync changed the store")
	}
	cli(t, admin, "creds", "sync").want(t, 2, "-keystone")
	cli(t, []string{"EC2PROXY_CONFIG=" + conf}, "creds", "sync", "-keystone").want(t, 1, "needs an admin account")
	// Horizon's application-credential openrc: refused before Keystone is
	// asked (Keystone lists no credentials to such a token: all removed).
	cli(t, append(append([]string{}, admin...), "OS_AUTH_TYPE=v3applicationcredential", "OS_APPLICATION_CREDENTIAL_ID=x", "OS_APPLICATION_CREDENTIAL_SECRET=y"),
		"creds", "sync", "-keystone").want(t, 1, "cannot use an application credential")
	// Keystone answers a non-admin's list with its own credentials only:
	// synced, that would remove everyone else's. Refused, nothing changed.
	cli(t, append([]string{"EC2PROXY_CONFIG=" + conf}, demo...), "creds", "sync", "-keystone").
		want(t, 1, `user "demo" has no admin role in project "demo"`, "use an admin account")
	if strings.Contains(cli(t, admin, "creds", "list").stdout, created.Access) {
		t.Fatal("a refused sync changed the store")
	}

	r := cli(t, admin, "creds", "sync", "-keystone", "-dry-run")
	r.want(t, 0, "would be added "+created.Access, "dry run, nothing changed")
	if strings.Contains(cli(t, admin, "creds", "list").stdout, created.Access) {
		t.Fatal("dry run changed the store")
	}
	cli(t, admin, "creds", "sync", "-keystone").want(t, 0, "added "+created.Access, "0 removed")
	cli(t, admin, "creds", "sync", "-keystone").want(t, 0, " 0 added, 0 updated, 0 removed") // idempotent
	cli(t, admin, "creds", "rotate", created.Access).want(t, 1, "managed by Keystone")

	// -watch keeps syncing until interrupted, then exits 0.
	watch := exec.Command(binary(t), "creds", "sync", "-keystone", "-watch", "1s")
	watch.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, admin...)
	var watchOut strings.Builder
	watch.Stdout = &watchOut
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	watch.Process.Signal(os.Interrupt)
	if err := watch.Wait(); err != nil {
		t.Errorf("sync -watch after SIGINT: %v", err)
	}
	if n := strings.Count(watchOut.String(), "sync: "); n < 2 {
		t.Errorf("sync -watch ran %d rounds in 2.5s; want at least 2:\n%s", n, watchOut.String())
	}

	call := func() callResult {
		time.Sleep(150 * time.Millisecond)
		return s.call("--client", "botocore", "--endpoint", s.url+"/", "--access", created.Access, "--secret", created.Secret)
	}
	if got := call(); !got.OK {
		t.Fatalf("synced credential refused: %+v", got)
	}
	openstack("ec2", "credentials", "delete", created.Access)
	cli(t, admin, "creds", "sync", "-keystone").want(t, 0, "removed "+created.Access, "1 removed")
	if got := call(); got.Code != "AuthFailure" {
		t.Errorf("credential deleted in Keystone and synced: %+v", got)
	}
}

// Redis down: one clear error, not go-redis's own log lines before it
// (found by a review: two "pool.go:...: failed to dial" lines each time).
func TestCLIRedisDownSaysItOnce(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {store: redis, allow_plaintext: true}\nredis: {addrs: ['127.0.0.1:1']}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	r := cli(t, nil, "creds", "list", "-config", cfg)
	r.want(t, 1, "127.0.0.1:1")
	if strings.Contains(r.stderr, "pool.go") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
		t.Errorf("creds list with Redis down printed more than its error:\n%s", r.stderr)
	}
}

// A one-off creds sync stopped by SIGTERM stops at once (found by a
// review: it caught the signal only to ignore it until its round ended,
// 30 s later against a Keystone that did not answer, and exited 1).
func TestCLISyncStopsOnSignal(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, nil, 0o600)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {store: file, file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	cmd := exec.Command(binary(t), "creds", "sync", "-keystone", "-config", cfg)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "OS_AUTH_URL=http://" + hang.Addr().String() + "/v3", "OS_USERNAME=admin", "OS_PASSWORD=x"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("creds sync took %v to stop after SIGTERM", took)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("creds sync after SIGTERM: %v; want killed by the signal", err)
	}
}

// An openrc that names the project and domains by id (Horizon's sets
// OS_PROJECT_ID and OS_PROJECT_DOMAIN_ID) is read as the openstack CLI
// reads it: the ids win over names, here ones that name nothing.
func TestCLISyncWithOpenrcIDs(t *testing.T) {
	s := startStack(t, nil)
	ks := testenv.KeystoneEnv(t)
	env := []string{"EC2PROXY_CONFIG=" + s.cliConfig(), "OS_AUTH_URL=" + ks.URL + "/v3",
		"OS_USERNAME=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), "OS_PASSWORD=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"),
		"OS_PROJECT_ID=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT_ID"), "OS_PROJECT_NAME=no-such-project",
		"OS_USER_DOMAIN_ID=" + ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID"), "OS_USER_DOMAIN_NAME=no-such-domain",
		"OS_PROJECT_DOMAIN_ID=no-such-domain-id"}
	cli(t, env, "creds", "sync", "-keystone", "-dry-run").want(t, 0, "dry run, nothing changed")
	// The project by name, its domain by id (the last of a duplicated
	// variable is the one the command sees).
	byName := append(env[:len(env):len(env)], "OS_PROJECT_ID=", "OS_PROJECT_NAME="+ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT"),
		"OS_PROJECT_DOMAIN_ID="+ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID"), "OS_PROJECT_DOMAIN_NAME=no-such-domain")
	cli(t, byName, "creds", "sync", "-keystone", "-dry-run").want(t, 0, "dry run, nothing changed")
	// The user by id: its name and domain are not needed.
	byUserID := append(env[:len(env):len(env)], "OS_USER_ID="+ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER_ID"), "OS_USERNAME=no-such-user", "OS_USER_DOMAIN_ID=")
	cli(t, byUserID, "creds", "sync", "-keystone", "-dry-run").want(t, 0, "dry run, nothing changed")
}

// OS_CLOUD names a clouds.yaml cloud (password in secure.yaml), as the
// openstack CLI reads it: the same files get a token from the real
// openstack CLI, and creds sync reads the admin account from them.
func TestCLISyncWithCloudsYaml(t *testing.T) {
	s := startStack(t, nil)
	ks := testenv.KeystoneEnv(t)
	dir := t.TempDir()
	clouds, secure := filepath.Join(dir, "clouds.yaml"), filepath.Join(dir, "secure.yaml")
	os.WriteFile(clouds, []byte(fmt.Sprintf(`clouds:
  ec2admin:
    auth_type: password
    identity_api_version: 3
    auth:
      auth_url: %s/v3
      username: %s
      project_name: %s
      user_domain_name: Default
      project_domain_id: %s
`, ks.URL, ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID"))), 0o600)
	os.WriteFile(secure, []byte(fmt.Sprintf("clouds:\n  ec2admin:\n    auth:\n      password: %q\n", ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"))), 0o600)
	env := []string{"OS_CLOUD=ec2admin", "OS_CLIENT_CONFIG_FILE=" + clouds, "OS_CLIENT_SECURE_FILE=" + secure}

	openstack := exec.Command("/usr/bin/openstack", "token", "issue", "-f", "value", "-c", "id")
	openstack.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	if out, err := openstack.CombinedOutput(); err != nil {
		t.Fatalf("the openstack CLI refuses these files: %v\n%s", err, out)
	}
	cli(t, append(env, "EC2PROXY_CONFIG="+s.cliConfig()), "creds", "sync", "-keystone", "-dry-run").want(t, 0, "dry run, nothing changed")
	cli(t, append(env[:1:1], "EC2PROXY_CONFIG="+s.cliConfig(), "OS_CLIENT_CONFIG_FILE="+filepath.Join(dir, "none.yaml")), "creds", "sync", "-keystone").
		want(t, 1, "OS_CLOUD=ec2admin: no clouds.yaml names it")
}
