package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// recorder counts a File's callbacks.
type recorder struct {
	mu       sync.Mutex
	reloads  int
	failures []error
}

func (r *recorder) options() FileOptions {
	return FileOptions{
		OnReload: func() { r.mu.Lock(); r.reloads++; r.mu.Unlock() },
		OnError:  func(err error) { r.mu.Lock(); r.failures = append(r.failures, err); r.mu.Unlock() },
	}
}

func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloads, len(r.failures)
}

// write replaces the file's content and gives it a modification time of its
// own, so the change shows whatever the file system's timestamp granularity.
func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func allows(f *File, roles ...string) bool {
	ok, _ := f.Policy().Authorize([]byte("RunInstances"), &Creds{ProjectID: "p1", Roles: roles}, &own)
	return ok
}

// openMember opens a policy file that lets role member in, written an
// hour ago: its path and time, the File, and what its callbacks said.
func openMember(t *testing.T) (path string, start time.Time, rec *recorder, f *File) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "policy.yaml")
	start = time.Now().Add(-time.Hour).Truncate(time.Second)
	write(t, path, "default: role:member\n", start)
	rec = new(recorder)
	f, err := Open(path, rec.options())
	if err != nil {
		t.Fatal(err)
	}
	return path, start, rec, f
}

func TestFileReload(t *testing.T) {
	path, start, rec, f := openMember(t)
	if !allows(f, "member") || allows(f, "admin") {
		t.Fatal("the first version does not decide as written")
	}

	step := func(name string, wantReloaded bool, wantErr string, wantReloads, wantFailures int) {
		t.Helper()
		reloaded, err := f.Check()
		if reloaded != wantReloaded || (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: Check() = %v, %v; want %v, error containing %q", name, reloaded, err, wantReloaded, wantErr)
		}
		if reloads, failures := rec.counts(); reloads != wantReloads || failures != wantFailures {
			t.Errorf("%s: %d reloads, %d failures; want %d, %d", name, reloads, failures, wantReloads, wantFailures)
		}
	}

	step("unchanged", false, "", 0, 0)

	write(t, path, "default: role:admin\n", start.Add(time.Second))
	step("changed", true, "", 1, 0)
	if allows(f, "member") || !allows(f, "admin") {
		t.Error("the new rules are not in use")
	}
	step("unchanged after reload", false, "", 1, 0)

	// Same size and content length, new time: reloaded.
	write(t, path, "default: role:other\n", start.Add(2*time.Second))
	step("same size", true, "", 2, 0)
	if !allows(f, "other") {
		t.Error("the same-size change is not in use")
	}

	write(t, path, "default: \"(role:admin\"\nec2:X: rule:nope\n", start.Add(3*time.Second))
	step("broken", false, `line 1: rule "default": unbalanced parentheses`, 2, 1)
	if !allows(f, "other") {
		t.Error("a broken file replaced the rules")
	}
	if _, err := f.Check(); err == nil || !strings.Contains(err.Error(), `rule "ec2:X": "rule:nope" refers to no rule`) {
		t.Errorf("still broken: Check() = %v; want every error again", err)
	}
	if _, failures := rec.counts(); failures != 1 {
		t.Errorf("OnError called %d times for one broken version; want 1", failures)
	}
	var errs Errors
	if !errors.As(rec.failures[0], &errs) || len(errs) != 2 || !strings.Contains(rec.failures[0].Error(), path) {
		t.Errorf("OnError(%v); want the path and both errors", rec.failures[0])
	}

	write(t, path, "default: role:reader\n", start.Add(4*time.Second))
	step("restored", true, "", 3, 1)
	if !allows(f, "reader") {
		t.Error("the restored file is not in use")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	step("removed", false, "no such file", 3, 2)
	step("still removed", false, "no such file", 3, 2)
	if !allows(f, "reader") {
		t.Error("a removed file dropped the rules")
	}

	write(t, path, "default: role:member\n", start.Add(5*time.Second))
	step("back", true, "", 4, 2)
}

// An operator replaces the file by renaming a new one over it; even with the
// same size and time the new inode is noticed.
func TestFileRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	write(t, path, "default: role:aaaa\n", mtime)
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "policy.yaml.new")
	write(t, tmp, "default: role:bbbb\n", mtime)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if reloaded, err := f.Check(); !reloaded || err != nil {
		t.Fatalf("Check() = %v, %v; want a reload", reloaded, err)
	}
	if !allows(f, "bbbb") {
		t.Error("the renamed file is not in use")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "absent.yaml"), FileOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(absent) = %v; want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, "a: rule:b\nc: rol:x\n", time.Now())
	_, err := Open(bad, FileOptions{})
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 || !strings.HasPrefix(err.Error(), bad+": invalid policy:") {
		t.Errorf("Open(bad) = %v; want the path and both errors", err)
	}
	big := filepath.Join(dir, "big.yaml")
	write(t, big, "a: \"@\"\n"+strings.Repeat("#", maxFileSize), time.Now())
	if _, err := Open(big, FileOptions{}); err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Errorf("Open(big) = %v", err)
	}
}

func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	write(t, path, "default: role:member\n", start)
	reloaded := make(chan struct{}, 1)
	f, err := Open(path, FileOptions{OnReload: func() { reloaded <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Watch(ctx, 5*time.Millisecond); close(done) }()
	write(t, path, "default: role:admin\n", start.Add(time.Second))
	select {
	case <-reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not reload the changed file")
	}
	if !allows(f, "admin") {
		t.Error("the watched change is not in use")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return when its context ended")
	}

	f.Watch(context.Background(), 0) // returns at once: reloading disabled
}

// A file written in place can be caught half-written; cut at a line end, a
// YAML policy still parses, with rules missing. Watch's ticks read a
// changed version only when the next tick finds it unchanged.
func TestWatchWaitsForTheFileToHoldStill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	full := "default: role:admin\nec2:RunInstances: role:admin and project_id:%(project_id)s\n"
	write(t, path, full, start)
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tick := func(what string, wantReloaded bool) {
		t.Helper()
		if reloaded, err := f.checkAndNotify(true); reloaded != wantReloaded || err != nil {
			t.Fatalf("%s: tick = %v, %v; want %v, nil", what, reloaded, err, wantReloaded)
		}
	}
	tick("unchanged", false)
	// An editor rewriting it in place: the first line is out, valid alone,
	// and would let anyone run instances under role member.
	write(t, path, "default: role:member\n", start.Add(time.Second))
	tick("half-written", false)
	if allows(f, "member") {
		t.Fatal("a version seen once is in use")
	}
	write(t, path, "default: role:member\nec2:RunInstances: role:admin\n", start.Add(2*time.Second))
	tick("written, still changing", false)
	tick("held still", true)
	if allows(f, "member") || !allows(f, "admin") {
		t.Error("the complete version is not in use")
	}
	tick("unchanged after", false)
}

// A version that could not be opened or read (a permission fixed with
// chmod, which leaves it the same version; descriptors out for a moment)
// is tried again, and the failure reported once; it was recorded as the
// version's verdict, so the new file stayed out until it changed again
// (found by a review). A broken version, read whole, is not reread.
func TestFileReloadAfterAnUnreadableVersion(t *testing.T) {
	path, start, rec, f := openMember(t)
	write(t, path, "default: role:admin\n", start.Add(time.Minute))
	var opens int
	f.open = func(p string) (*os.File, error) {
		if opens++; opens <= 2 {
			return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EMFILE}
		}
		return os.Open(p)
	}
	for range 2 {
		if reloaded, err := f.checkAndNotify(false); reloaded || !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("out of descriptors: reloaded %v, %v", reloaded, err)
		}
	}
	if reloaded, err := f.checkAndNotify(false); !reloaded || err != nil {
		t.Fatalf("descriptors back: reloaded %v, %v; want the new version", reloaded, err)
	}
	if !allows(f, "admin") || allows(f, "member") {
		t.Error("the new version is not in use")
	}
	if reloads, failures := rec.counts(); reloads != 1 || failures != 1 {
		t.Errorf("callbacks: %d reloads, %d failures; want 1 and 1 (the same failure reported once)", reloads, failures)
	}

	write(t, path, "default: role:\n", start.Add(2*time.Minute)) // broken
	if _, err := f.checkAndNotify(false); err == nil {
		t.Fatal("a broken version loaded")
	}
	opens = 0
	f.checkAndNotify(false)
	if opens != 0 {
		t.Errorf("a broken version, read whole, was read %d more times", opens)
	}
}
