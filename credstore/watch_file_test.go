package credstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// A changed file is read again: the keys whose records changed are
// reported, Get answers from the new version, and a version that does not
// parse is reported once while the last good one stays.
func TestWatchedFileFollowsChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.yaml")
	write := func(body string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, mtime, mtime) // distinct versions within one clock tick
	}
	rec := func(access, enabled string) string {
		return "- {access_key: " + access + ", secret: S" + access + ", user_id: u, project_id: p, enabled: " + enabled + "}\n"
	}
	base := time.Now().Add(-time.Hour)
	write("credentials:\n"+rec("AKA", "true")+rec("AKB", "true")+rec("AKC", "true"), base)
	w, err := LoadWatchedFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var changed []string
	var failures []error
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Watch(ctx, FileWatch{Interval: 5 * time.Millisecond,
			Changed: func(k string) { mu.Lock(); changed = append(changed, k); mu.Unlock() },
			Failed:  func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() },
		})
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			good := ok()
			mu.Unlock()
			if good {
				return
			}
		}
		t.Fatalf("timed out waiting for %s (changed %q, failures %v)", what, changed, failures)
	}

	// AKA disabled, AKB deleted, AKC unchanged, AKD added.
	write("credentials:\n"+rec("AKA", "false")+rec("AKC", "true")+rec("AKD", "true"), base.Add(time.Second))
	waitFor("the change", func() bool { return len(changed) == 3 })
	sort.Strings(changed)
	if strings.Join(changed, ",") != "AKA,AKB,AKD" {
		t.Errorf("changed %q; want AKA,AKB,AKD", changed)
	}
	ctx0 := context.Background()
	if r, err := w.Get(ctx0, "AKA"); err != nil || r.Enabled {
		t.Errorf("AKA = %+v, %v; want it disabled", r, err)
	}
	if _, err := w.Get(ctx0, "AKB"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AKB: %v; want ErrNotFound", err)
	}

	write("credentials: [ {access_key: broken", base.Add(2*time.Second))
	waitFor("the failure", func() bool { return len(failures) == 1 })
	time.Sleep(30 * time.Millisecond) // more ticks: reported once
	mu.Lock()
	if len(failures) != 1 {
		t.Errorf("a broken version reported %d times; want once", len(failures))
	}
	mu.Unlock()
	if _, err := w.Get(ctx0, "AKD"); err != nil {
		t.Errorf("after a broken version, AKD: %v; want the last good version kept", err)
	}
}
