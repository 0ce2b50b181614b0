package test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
)

// With the file store, what `creds disable`, `rotate` and `delete` write
// reaches a running proxy without a reload: a disabled key is refused,
// a rotated one answers to its new secret only, a deleted one is
// unknown, each within a few seconds (the file is checked every second
// and the changed keys leave the caches at once).
func TestCredentialFileChangesApply(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer backend.Close()
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	os.WriteFile(path, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n- {access_key: AKB, secret: SKB, user_id: u, project_id: p}\n"), 0o600)
	_, url := startFileStoreApp(t, path, backend.URL, func(cfg *configs.Config) {
		cfg.Credentials.CacheTTL = time.Hour // the file watch, not the TTL, must apply changes
	})
	status := func(access, secret string) int { return ec2Call(url, "/", access, secret, nil).status }
	if s, s2 := status("AKA", "SKA"), status("AKB", "SKB"); s != 200 || s2 != 200 {
		t.Fatalf("before any change: %d %d", s, s2)
	}
	change := func(edit func(*credstore.File)) { // as the CLI does: load, change, save
		t.Helper()
		f, err := credstore.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		edit(f)
	}
	within := func(what string, want int, access, secret string) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if status(access, secret) == want {
				t.Logf("%s applied in %v", what, time.Since(start).Round(10*time.Millisecond))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("%s: not applied after 5 s (want %d, got %d)", what, want, status(access, secret))
	}
	ctx0 := context.Background()
	change(func(f *credstore.File) {
		r, _ := f.Get(ctx0, "AKA")
		r.Enabled = false
		f.Put(ctx0, r)
	})
	within("disable", 401, "AKA", "SKA")
	change(func(f *credstore.File) {
		r, _ := f.Get(ctx0, "AKB")
		r.Secret = "SKB2"
		f.Put(ctx0, r)
	})
	within("rotate (new secret)", 200, "AKB", "SKB2")
	if s := status("AKB", "SKB"); s != 403 {
		t.Errorf("the old secret after rotate: %d; want 403", s)
	}
	change(func(f *credstore.File) { f.Delete(ctx0, "AKB") })
	within("delete", 401, "AKB", "SKB2")
}
