package test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

// A running proxy picks up an edited policy file; a broken edit is logged,
// counted and ignored (the last good rules stay); a fixed file is taken.
func TestPolicyFileHotReload(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p, roles: [member]}\n"), 0o600)
	rules := filepath.Join(dir, "policy.yaml")
	write := func(body string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(rules, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(rules, mtime, mtime) // a distinct mtime even within one clock tick
	}
	base := time.Now().Add(-time.Hour)
	write(`default: "role:member"`+"\n", base)

	a, url := startFileStoreApp(t, creds, backend.URL, func(cfg *configs.Config) {
		cfg.Policy = configs.Policy{Enabled: true, File: rules, CheckInterval: 20 * time.Millisecond}
	})
	status := func() int { return ec2Call(url, "/", "AKA", "SKA", nil).status }

	if s := status(); s != 200 {
		t.Fatalf("member under default role:member: %d", s)
	}
	write(`default: "role:admin"`+"\n", base.Add(time.Minute))
	if _, ok := eventually(3*time.Second, func() bool { return status() == 403 }); !ok {
		t.Fatal("the edited policy (admin only) is not applied")
	}
	write(`default: "role:member" and (`+"\n", base.Add(2*time.Minute)) // broken
	time.Sleep(200 * time.Millisecond)
	if s := status(); s != 403 {
		t.Errorf("after a broken edit: %d, want the last good rules (403)", s)
	}
	if n := metricValue(t, a, "ec2proxy_policy_reloads_total", "error"); n < 1 {
		t.Errorf("policy_reloads_total{result=error} = %v", n)
	}
	write(`default: "role:member"`+"\n", base.Add(3*time.Minute))
	if _, ok := eventually(3*time.Second, func() bool { return status() == 200 }); !ok {
		t.Fatal("the fixed policy is not applied")
	}
}

func metricValue(t *testing.T, a *app.App, name, result string) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if lp.GetName() == "result" && lp.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// startFileStoreApp runs a standalone app (no Redis, no Keystone) on the
// credentials file creds in front of backend until the test ends, and
// returns it and its URL.
func startFileStoreApp(t *testing.T, creds, backend string, edit func(*configs.Config)) (*app.App, string) {
	t.Helper()
	cfg := configs.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", ""
	cfg.Identity.Mode = configs.ModeStandalone
	cfg.Credentials.Store, cfg.Credentials.File = configs.StoreFile, creds
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: backend}}
	if edit != nil {
		edit(&cfg)
	}
	if p := cfg.Validate(); len(p) > 0 {
		t.Fatal(p)
	}
	a, err := app.Build(&cfg, zap.NewNop(), "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, "http://" + ln.Addr().String()
}
