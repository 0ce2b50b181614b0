package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/demobackend"
	"github.com/ec2proxy/ec2proxy/internal/app"
	"github.com/ec2proxy/ec2proxy/internal/rawsock"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// stack is one running ec2proxy in front of a recording backend.
type stack struct {
	t        *testing.T
	cfg      *configs.Config
	app      *app.App
	url      string // EC2 endpoint, http://127.0.0.1:port
	adminURL string
	backend  *demobackend.Backend
	store    *credstore.Redis
	logs     *observer.ObservedLogs
}

// startStack runs ec2proxy with Redis credentials and Keystone identity.
// edit may change the configuration before it is validated.
func startStack(t *testing.T, edit func(*configs.Config)) *stack {
	t.Helper()
	ks := testenv.KeystoneEnv(t)
	backend := &demobackend.Backend{}
	backendSrv := httptest.NewServer(backend)
	t.Cleanup(backendSrv.Close)

	cfg := configs.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:1"
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: backendSrv.URL}}
	cfg.Redis.Addrs = []string{testenv.RedisAddr(t)}
	cfg.Redis.KeyPrefix = fmt.Sprintf("ec2proxy-e2e:%s:%d:", t.Name(), time.Now().UnixNano())
	cfg.Credentials.Store = configs.StoreRedis
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(keyFile, []byte(credstore.GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Credentials.EncryptionKeyFile = keyFile
	cfg.Identity.Mode = configs.ModeKeystone
	cfg.Keystone.AuthURL = ks.URL
	cfg.Keystone.ServiceUser = configs.ServiceUser{
		Name: ks.ServiceUser, Password: ks.ServicePassword, DomainName: ks.ServiceDomain,
		ProjectName: ks.ServiceProject, ProjectDomainName: ks.ServiceDomain,
	}
	cfg.Protection.Lockout.MaxFailures = 1000 // tests that fail on purpose set their own
	if os.Getenv("EC2PROXY_TEST_EVENT_LOOP") == "0" {
		cfg.Server.EventLoop = false // CI's goroutine-server stage: the same tests, without the loop (tests that need it turn it on)
	}
	cfg.Log.Level = "debug"
	cfg.Log.Access = true
	if edit != nil {
		edit(&cfg)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	level, err := zapcore.ParseLevel(cfg.Log.Level)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(level)
	a, err := app.Build(&cfg, zap.New(core), "e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.RawSocketIO { // as app.ListenEC2 does
		ln = rawsock.Listener{Listener: ln}
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln, adminLn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	s := &stack{t: t, cfg: &cfg, app: a, url: "http://" + ln.Addr().String(), adminURL: "http://" + adminLn.Addr().String(), backend: backend, logs: logs}
	if cfg.Credentials.Store == configs.StoreRedis {
		client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
		t.Cleanup(func() {
			keys, _ := client.Keys(context.Background(), cfg.Redis.KeyPrefix+"*").Result()
			if len(keys) > 0 {
				client.Del(context.Background(), keys...)
			}
			client.Close()
		})
		keyring, err := app.LoadKeyring(cfg.Credentials)
		if err != nil {
			t.Fatal(err)
		}
		s.store = credstore.NewRedis(client, cfg.Redis.KeyPrefix, keyring)
	}
	return s
}

// putDemoCredential copies Keystone's demo EC2 credential into Redis, as an
// operator's sync would.
func (s *stack) putDemoCredential() (access, secret string) {
	s.t.Helper()
	ks := testenv.KeystoneEnv(s.t)
	access, secret = ks.Var(s.t, "DEMO_EC2_ACCESS"), ks.Var(s.t, "DEMO_EC2_SECRET")
	err := s.store.Put(context.Background(), credstore.Record{
		AccessKey: access, Secret: secret, Enabled: true,
		UserID: ks.Var(s.t, "DEMO_USER_ID"), ProjectID: ks.Var(s.t, "DEMO_PROJECT_ID"),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return access, secret
}

// callResult is what clients/ec2call.py prints.
type callResult struct {
	OK      bool   `json:"ok"`
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Body    string `json:"body"`
	Retries int    `json:"retries"` // botocore's, with --calls
}

// call runs one EC2 call with a real client library.
func (s *stack) call(args ...string) callResult {
	s.t.Helper()
	out := s.run(args...)
	var r callResult
	if err := json.Unmarshal(out, &r); err != nil {
		s.t.Fatalf("ec2call.py printed %q: %v", out, err)
	}
	return r
}

// run runs clients/ec2call.py and returns what it printed.
func (s *stack) run(args ...string) []byte {
	s.t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"clients/ec2call.py"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + s.t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "BOTO_CONFIG=/dev/null"}
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		s.t.Fatalf("ec2call.py %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// metric reads one series from the proxy's registry.
func (s *stack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	mfs, err := s.app.Registry.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// get fetches a URL and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

func credRecord(access, secret, user, project string) credstore.Record {
	return credstore.Record{AccessKey: access, Secret: secret, UserID: user, ProjectID: project, Enabled: true}
}

// assertNoSecretsLogged checks every log line (debug level) and the metrics
// for the given secrets and for every signature the backend received.
func (s *stack) assertNoSecretsLogged(secrets ...string) {
	s.t.Helper()
	for _, r := range s.backend.Requests() {
		q, _ := url.ParseQuery(r.Body)
		if sig := q.Get("Signature"); sig != "" {
			secrets = append(secrets, sig)
		}
		if u, err := url.ParseRequestURI(r.URI); err == nil {
			if sig := u.Query().Get("Signature"); sig != "" {
				secrets = append(secrets, sig)
			}
		}
	}
	var all strings.Builder
	for _, e := range s.logs.All() {
		fmt.Fprintf(&all, "%s %v\n", e.Message, e.ContextMap())
	}
	_, metrics := get(s.t, s.adminURL+"/metrics")
	all.WriteString(metrics)
	if all.Len() < 100 {
		s.t.Fatalf("too little output to check: %q", all.String())
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(all.String(), secret) {
			s.t.Errorf("a secret, signature or token appears in the logs or metrics: %.12s...", secret)
		}
	}
}

// syncBuffer is an io.Writer safe to read while a child process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startReplicas runs two stacks configured by edit that share one key
// prefix and encryption key: two replicas of one fleet.
func startReplicas(t *testing.T, edit func(*configs.Config)) (a, b *stack) {
	t.Helper()
	a = startStack(t, edit)
	b = startStack(t, func(c *configs.Config) {
		edit(c)
		c.Redis.KeyPrefix = a.cfg.Redis.KeyPrefix
		c.Credentials.EncryptionKeyFile = a.cfg.Credentials.EncryptionKeyFile
	})
	return a, b
}
