package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimalStandalone = `
identity: {mode: standalone}
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse([]byte(minimalStandalone+"auth: {timestamp_window: 2m}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.TimestampWindow != 2*time.Minute {
		t.Errorf("timestamp_window = %v; want 2m", cfg.Auth.TimestampWindow)
	}
	if cfg.Credentials.Store != StoreFile {
		t.Errorf("store = %q; want file when no redis is configured", cfg.Credentials.Store)
	}
	if cfg.Listen != ":8773" || cfg.Server.MaxBodyBytes != 1<<20 || cfg.Auth.MaxExpiresAhead != 15*time.Minute ||
		!cfg.Server.EventLoop || !cfg.Server.IOUring {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

// The event loop is on by default, and TLS, the PROXY protocol or an
// https:// backend do not make the configuration invalid: the goroutine
// server serves those (see app.NewRunner and proxy's route dispatch).
func TestEventLoopWithGoroutineOnlyFeatures(t *testing.T) {
	_, err := Parse([]byte(`
identity: {mode: standalone}
credentials: {file: x}
routes: [{path_prefix: /, backend: "https://nova:8773"}]
server: {event_loop: true, proxy_protocol: true, trusted_proxies: [10.0.0.0/8], tls: {cert_file: c, key_file: k}}
`), nil)
	if err != nil {
		t.Error(err)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string // substrings, each must appear
	}{
		{"unknown keys", minimalStandalone + "lisen: ':1'\nserver: {read_timeot: 1s}\n", nil,
			[]string{"field lisen not found", "field read_timeot not found"}},
		{"bad duration", minimalStandalone + "server: {read_timeout: 10}\n", nil, []string{"read_timeout"}},
		{"many problems at once", `
listen: "nope"
identity: {mode: keystone}
credentials: {store: redis}
routes: [{path_prefix: api, backend: "ftp://x"}]
auth: {timestamp_window: -1s}
log: {level: loud}
`, nil, []string{
			`listen: "nope" is not host:port`,
			"redis.addrs: required",
			"routes[0].path_prefix: must start with /",
			`routes[0].backend: "ftp://x" is not an http`,
			"auth.timestamp_window: must be a positive duration",
			"keystone.auth_url: required",
			"keystone.service_user.name: required",
			"log.level: must be",
		}},
		{"no routes", "identity: {mode: standalone}\ncredentials: {file: x}\n", nil, []string{"routes: at least one route"}},
		{"keystone password twice", `
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
identity: {mode: keystone}
keystone: {auth_url: "http://ks:5000", service_user: {name: ec2proxy, project_name: service, password: a, password_file: /f}}
`, nil, []string{"set exactly one of password and password_file"}},
		{"service user and application credential", `
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
identity: {mode: keystone}
keystone: {auth_url: "http://ks:5000", service_user: {name: ec2proxy, password: a}, application_credential: {secret: s, secret_file: /f}}
`, nil, []string{"set service_user (name and password) or application_credential, not both",
			"keystone.application_credential.id: required", "keystone.application_credential: set exactly one of secret and secret_file"}},
		{"application credential with a service user's project", `
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
identity: {mode: keystone}
keystone: {auth_url: "http://ks:5000", service_user: {project_name: admin}, application_credential: {id: abc, secret: s}}
`, nil, []string{"keystone.service_user: its domain and project names have no effect with keystone.application_credential"}},
		{"unknown env var", minimalStandalone, []string{"EC2PROXY_LISTNE=:1"}, []string{"EC2PROXY_LISTNE does not match any setting"}},
		{"bad env value", minimalStandalone, []string{"EC2PROXY_AUTH_TIMESTAMP_WINDOW=5"}, []string{"is not a duration"}},
		{"admin_listen on listen's port", minimalStandalone + "listen: 0.0.0.0:8773\nadmin_listen: 127.0.0.1:8773\n", nil, []string{`admin_listen: "127.0.0.1:8773" and listen "0.0.0.0:8773" would bind the same port`}},
		{"Expires too far ahead", minimalStandalone + "auth: {max_expires_ahead: 876000h}\n", nil, []string{"auth.max_expires_ahead: 876000h0m0s is more than 7 days"}},
		{"trusted proxies", minimalStandalone + "server: {trusted_proxies: [10.0.0.0/8, banana, 10.0.0.0/08]}\n", nil, []string{`"banana" is not a CIDR`, `"10.0.0.0/08" is not a CIDR`}},
		// Found by a review: each was accepted and then misbehaved.
		{"memory limit that overflows", minimalStandalone + "server: {memory_limit_mib: 17592186044416}\n", nil, []string{"server.memory_limit_mib: must be 0 (no limit) or from 32 to 16777216, got 17592186044416"}},
		{"policy file, policy off", minimalStandalone + "policy: {file: /etc/ec2proxy/policy.yaml}\n", nil, []string{"policy.file: set, but policy.enabled is false"}},
		{"backend TLS, http backends", minimalStandalone + "backend: {tls: {ca_file: /ca.pem}}\n", nil, []string{"backend.tls: set, but every routes[].backend is plain http://"}},
		{"keystone TLS, HTTP:// in capitals", `
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
keystone: {auth_url: "HTTP://ks:5000", service_user: {name: ec2proxy, password: a}, tls: {ca_file: /ca.pem}}
`, nil, []string{`keystone.tls: set, but keystone.auth_url "HTTP://ks:5000" is plain http://`}},
		{"settings the configuration would ignore", `
identity: {mode: standalone}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
server: {max_body_bytes: 9223372036854775000, max_header_bytes: 2000000}
credentials: {file: /etc/ec2proxy/credentials.yaml, encryption_key_file: /etc/ec2proxy/key}
protection: {rate_limit: {burst: 20}}
keystone: {max_tokens: 10}
`, []string{"EC2PROXY_CREDENTIALS_MAX_ENTRIES=100"}, []string{
			"credentials.max_entries: must be at least 1000, got 100",
			"server.max_body_bytes: must be from 1024 to 1073741824 (1 GiB), got 9223372036854775000",
			"server.max_header_bytes: must be from 4096 to 1048576 (1 MiB), got 2000000",
			"credentials.encryption_key_file, old_encryption_key_files and allow_plaintext: set, but they apply only to the redis store",
			"protection.rate_limit.burst: set, but requests_per_second is 0",
		}},
		{"a database on a Redis Cluster", `
identity: {mode: standalone}
credentials: {store: redis, allow_plaintext: true}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
redis: {addrs: ["10.0.0.1:6379", "10.0.0.2:6379"], db: 2}
`, nil, []string{"redis.db: 2, but several redis.addrs without master_name is a Redis Cluster"}},
		{"a type error and a second document", minimalStandalone + "server: {read_timeout: 10}\n---\nprotection: {lockout: {enabled: false}}\n", nil, []string{"read_timeout", "the file must hold one YAML document"}},
		{"scale-out settings", minimalStandalone + `
server: {proxy_protocol: true, memory_limit_mib: 8, gc_percent: 5, shutdown_delay: -1s}
protection: {rate_limit: {requests_per_second: 2000000, burst: 5, scope: cluster}}
policy: {enabled: true, check_interval: 0s}
`, []string{"EC2PROXY_CREDENTIALS_UNSUBSCRIBED_TTL=-1s"}, []string{
			"server.proxy_protocol: needs server.trusted_proxies",
			"server.memory_limit_mib: must be 0 (no limit) or from 32 to 16777216, got 8",
			"server.gc_percent: must be 0 (Go's default) or at least 10, got 5",
			"server.shutdown_delay: must be between 0s (stop accepting at once) and 5m, got -1s",
			`protection.rate_limit.scope: must be "fleet" or "replica", got "cluster"`,
			"protection.rate_limit.requests_per_second: at most 1000000 (per access key), got 2e+06",
			"policy.check_interval: must be a positive duration",
			"credentials.unsubscribed_ttl: must be a positive duration",
		}},
		{"values that would be ignored or crash", `
identity: {mode: standalone}
credentials: {store: file, file: /etc/ec2proxy/credentials.yaml}
listen: ":99999"
routes: [{path_prefix: /, backend: "http://nova:8773/services/Cloud"}, {path_prefix: /b, backend: "http://nova1,nova2:8773"}]
redis: {pool_size: -1, db: -1, addrs: ["127.0.0.1:6379"], tls: {ca_file: /ca.pem}}
`, []string{"EC2PROXY_PROTECTION_RATE_LIMIT_REQUESTS_PER_SECOND=NaN"}, []string{
			`listen: ":99999": the port must be a number from 0 to 65535`,
			`routes[0].backend: "http://nova:8773/services/Cloud" must have no path`,
			`routes[1].backend: "http://nova1,nova2:8773" names several hosts`,
			"redis.pool_size: must not be negative",
			"redis.db: must not be negative",
			"protection.rate_limit.requests_per_second: must be a number, got NaN",
			"redis.addrs: set, but credentials.store is file",
			"redis.tls: files or settings are given but redis.tls.enabled is false",
		}},
	}
	tests = append(tests, struct {
		name string
		yaml string
		env  []string
		want []string
	}{"passwords in URLs are not echoed", `
identity: {mode: keystone}
credentials: {store: redis}
routes: [{path_prefix: /, backend: "http://nova:s3cret-b@nova:8788"}]
keystone: {auth_url: "http://admin:s3cret-k@ks:5000/v3?x", service_user: {name: ec2proxy, password_file: /f}}
`, []string{"EC2PROXY_REDIS_ADDRS=redis://:s3cret-r@10.0.0.5:6379"}, []string{
		`redis.addrs[0]: "redis://:xxxxx@10.0.0.5:6379" is a URL with a password: write host:port (the password goes in redis.password_file)`,
		`routes[0].backend: "http://nova:xxxxx@nova:8788" must not hold a user name or password: write http://nova:8788`,
		`keystone.auth_url: "http://admin:xxxxx@ks:5000/v3?x" must not have a query or fragment`,
	}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), tt.env)
			if err == nil {
				t.Fatal("Parse succeeded; want problems")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("a password is shown:\n%v", err)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	cfg, err := Parse([]byte(minimalStandalone), []string{
		"EC2PROXY_LISTEN=127.0.0.1:9000",
		"EC2PROXY_REDIS_ADDRS=10.0.0.1:6379, 10.0.0.2:6379",
		"EC2PROXY_AUTH_TIMESTAMP_WINDOW=1m",
		"EC2PROXY_AUTH_DISABLE_SHA1=true",
		"EC2PROXY_REDIS_TLS_ENABLED=true",
		"EC2PROXY_REDIS_TLS_CA_FILE=/ca.pem",
		"EC2PROXY_CREDENTIALS_ALLOW_PLAINTEXT=true",
		"EC2PROXY_CONFIG=/ignored.yaml",
		"EC2PROXY_TEST_ANYTHING=ignored",
		"PATH=/usr/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" || cfg.Auth.TimestampWindow != time.Minute || !cfg.Auth.DisableSHA1 {
		t.Errorf("overrides not applied: listen %q window %v sha1 %v", cfg.Listen, cfg.Auth.TimestampWindow, cfg.Auth.DisableSHA1)
	}
	if len(cfg.Redis.Addrs) != 2 || cfg.Redis.Addrs[1] != "10.0.0.2:6379" {
		t.Errorf("redis.addrs = %q", cfg.Redis.Addrs)
	}
	if !cfg.Redis.TLS.Enabled || cfg.Redis.TLS.CAFile != "/ca.pem" {
		t.Errorf("redis.tls = %+v", cfg.Redis.TLS)
	}
	// The file said store: file implicitly; with redis addrs the default flips.
	if cfg.Credentials.Store != StoreRedis {
		t.Errorf("store = %q; want redis once redis.addrs is set", cfg.Credentials.Store)
	}
}

func TestEnvNamesCoverEverySetting(t *testing.T) {
	var c Config
	seen := map[string]bool{}
	for _, f := range leaves(reflectValue(&c), "") {
		name := EnvName(f.path)
		if seen[name] {
			t.Errorf("two settings share the environment variable %s", name)
		}
		seen[name] = true
	}
	for _, want := range []string{"EC2PROXY_KEYSTONE_SERVICE_USER_PASSWORD", "EC2PROXY_CREDENTIALS_CACHE_TTL", "EC2PROXY_REDIS_TLS_INSECURE"} {
		if !seen[want] {
			t.Errorf("no setting for %s", want)
		}
	}
}

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 3 {
		t.Fatalf("want an example per mode, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f, nil); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := Parse(DemoYAML, nil); err != nil {
		t.Errorf("embedded demo config: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load = %v; want a clear missing-file error", err)
	}
}

func TestEmptyFileUsesDefaultsButNeedsRoutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "routes") {
		t.Errorf("Load(empty) = %v; want the missing routes reported", err)
	}
}

// A file that is not YAML, or repeats a key, is reported as that alone:
// checking what was read of it would call settings the file does set
// missing.
func TestParseUnreadableYAML(t *testing.T) {
	for name, yaml := range map[string]string{
		"tab indentation": minimalStandalone + "server:\n\tread_timeout: 5s\n",
		"repeated key":    minimalStandalone + "listen: ':1'\nlisten: ':2'\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(yaml), nil)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if p, ok := err.(Problems); !ok || len(p) != 1 || !strings.Contains(p[0], "line ") {
				t.Errorf("problems %q; want the YAML error alone", err)
			}
		})
	}
}

func TestSameSocket(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"0.0.0.0:8773", "127.0.0.1:8773", true},
		{":8773", "127.0.0.1:8773", true},
		{"[::]:8773", "10.0.0.1:8773", true},
		{"localhost:8773", "127.0.0.1:8773", true},
		{"127.0.0.1:8773", "127.0.0.1:8773", true},
		{"127.0.0.1:8773", "127.0.0.1:8774", false},
		{"10.0.0.1:8773", "127.0.0.1:8773", false},
		{"localhost:8773", "10.0.0.1:8773", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"127.0.0.1:8773", "", false},
	} {
		if got := sameSocket(tc.a, tc.b); got != tc.same {
			t.Errorf("sameSocket(%q, %q) = %v; want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// A second YAML document (a "---" and more settings after it) was read by
// nobody: a file that looked valid was served with the first document's
// settings only (found by a review).
func TestParseRefusesASecondDocument(t *testing.T) {
	_, err := Parse([]byte(minimalStandalone+"---\nprotection: {lockout: {enabled: false}}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "one YAML document") {
		t.Errorf("a file of two YAML documents: %v; want it refused", err)
	}
	for _, one := range []string{"---\n" + minimalStandalone, minimalStandalone + "---\n", minimalStandalone + "---\n# nothing else\n"} {
		if _, err := Parse([]byte(one), nil); err != nil {
			t.Errorf("one document (and an empty one) %q: %v", one, err)
		}
	}
}

// Redis addresses' ports are checked as listen's are (found by a review:
// 127.0.0.1:abc and :99999 passed check-config).
func TestRedisAddrPorts(t *testing.T) {
	_, err := Parse([]byte(minimalStandalone+"redis: {addrs: ['127.0.0.1:abc', '127.0.0.1:99999', '127.0.0.1:6379']}\n"), nil)
	p, _ := err.(Problems)
	var named []string
	for _, s := range p {
		if strings.Contains(s, "redis.addrs") {
			named = append(named, s)
		}
	}
	if len(named) != 2 || !strings.Contains(named[0], "redis.addrs[0]") || !strings.Contains(named[1], "redis.addrs[1]") {
		t.Errorf("problems %q; want redis.addrs[0] and [1] named", err)
	}
}

// An application credential stands in for the service user's password.
func TestApplicationCredentialInsteadOfServiceUser(t *testing.T) {
	cfg, err := Parse([]byte(`
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
identity: {mode: keystone}
keystone: {auth_url: "http://ks:5000", application_credential: {id: 0123abcd, secret_file: /etc/ec2proxy/app-cred-secret}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ac := cfg.Keystone.ApplicationCredential; ac.ID != "0123abcd" || ac.SecretFile != "/etc/ec2proxy/app-cred-secret" {
		t.Errorf("application_credential = %+v", ac)
	}
}
