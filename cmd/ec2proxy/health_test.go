package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2proxy/ec2proxy/proxy"
)

// health asks the real admin handler: alive, ready, or not ready with the
// failing dependency named; the address comes from -addr or admin_listen.
func TestHealth(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	redisDown := []proxy.ReadyCheck{{Name: "redis", Check: func(context.Context) error { return errors.New("connection refused") }}}
	admin := httptest.NewServer(proxy.NewAdminHandler(prometheus.NewRegistry(), redisDown))
	defer admin.Close()
	addr := strings.TrimPrefix(admin.URL, "http://")

	if code, stdout, stderr := runCLI("health", "-addr", addr); code != 0 || !strings.Contains(stdout, "/healthz: ok") {
		t.Errorf("health: %d %s%s; want 0, ok", code, stdout, stderr)
	}
	if code, _, stderr := runCLI("health", "-addr", addr, "-ready"); code != 1 || !strings.Contains(stderr, "503") || !strings.Contains(stderr, "redis") {
		t.Errorf("health -ready with Redis down: %d %s; want 1 naming redis", code, stderr)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	creds := filepath.Join(dir, "creds.yaml")
	os.WriteFile(creds, nil, 0o600)
	os.WriteFile(cfg, []byte("admin_listen: "+addr+"\nidentity: {mode: standalone}\ncredentials: {file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	if code, stdout, stderr := runCLI("health", "-config", cfg); code != 0 {
		t.Errorf("health -config (admin_listen): %d %s%s", code, stdout, stderr)
	}
	admin.Close()
	if code, _, stderr := runCLI("health", "-addr", addr); code != 1 || !strings.Contains(stderr, "connection refused") || strings.Count(stderr, "/healthz") != 1 {
		t.Errorf("health, nothing listening: %d %s; want 1, the address once and why", code, stderr)
	}
}
