package credstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseFile(t *testing.T) {
	f, err := ParseFile([]byte(`
credentials:
  - access_key: AK1
    secret: S1
    user_id: u1
    project_id: p1
    roles: [member, reader]
  - access_key: AK2
    secret: S2
    user_id: u2
    project_id: p2
    enabled: false
`), "creds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Get(context.Background(), "AK1")
	if err != nil || r.Secret != "S1" || !r.Enabled || len(r.Roles) != 2 {
		t.Errorf("Get(AK1) = %+v, %v; want enabled by default with 2 roles", r, err)
	}
	if r, _ := f.Get(context.Background(), "AK2"); r.Enabled {
		t.Error("AK2 should be disabled")
	}
	if _, err := f.Get(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(nope) = %v; want ErrNotFound", err)
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"duplicate", "credentials:\n- {access_key: A, secret: s, user_id: u, project_id: p}\n- {access_key: A, secret: t, user_id: u, project_id: p}\n", "appears twice"},
		{"no secret", "credentials:\n- {access_key: A, user_id: u, project_id: p}\n", "credentials[0]: secret is empty"},
		{"no project", "credentials:\n- {access_key: A, secret: s, user_id: u}\n", "project id is empty"},
		{"unknown field", "credentials:\n- {access_key: A, secret: s, user_id: u, project_id: p, sekret: x}\n", "field sekret not found"},
		{"not yaml", "credentials: [", "creds.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.yaml), "creds.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFile = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFileWrite(t *testing.T) {
	path := t.TempDir() + "/creds.yaml"
	if err := os.WriteFile(path, []byte("credentials: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.Put(ctx, Record{AccessKey: "B", Secret: "s", UserID: "u", ProjectID: "p", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, Record{AccessKey: "A", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true, Source: "keystone"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, Record{AccessKey: "C"}); err == nil {
		t.Error("Put accepted an invalid record")
	}
	again, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	again.List(ctx, func(r Record, _ error) error { keys = append(keys, r.AccessKey); return nil })
	if strings.Join(keys, ",") != "A,B" {
		t.Errorf("reloaded keys = %v", keys)
	}
	if b, _ := again.Get(ctx, "B"); b.Enabled {
		t.Error("B should stay disabled after a round trip")
	}
	if a, _ := again.Get(ctx, "A"); a.Source != "keystone" || !a.Enabled {
		t.Errorf("A = %+v", a)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
		t.Errorf("file mode %v; want 0640: the group kept (the service may read it so), others' access taken away", info.Mode().Perm())
	}
	if err := again.Delete(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	if err := again.Delete(ctx, "A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v", err)
	}
}

// Two processes changing one credentials file (creds sync -watch and a
// creds disable, two operators) keep each other's changes: each change is
// made to the file as it is, under a lock (found by a review: each wrote
// back the copy it had read).
func TestFileChangesDoNotUndoEachOther(t *testing.T) {
	path := t.TempDir() + "/creds.yaml"
	if err := os.WriteFile(path, []byte("credentials: [{access_key: K, secret: s, user_id: u, project_id: p}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k, _ := a.Get(ctx, "K")
	k.Enabled = false
	if err := a.Put(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, Record{AccessKey: "NEW", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "NEW"); err != nil {
		t.Errorf("a deleting what b added: %v", err)
	}
	if err := b.Put(ctx, Record{AccessKey: "NEW2", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	now, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := now.Get(ctx, "K"); r.Enabled {
		t.Error("b's write undid a's disable")
	}
	if _, err := now.Get(ctx, "NEW"); err == nil {
		t.Error("b's write brought back what a deleted")
	}
	if _, err := now.Get(ctx, "NEW2"); err != nil {
		t.Error("b's last write is missing")
	}
}

// Writers at once: every one's records are kept (the lock; without it
// 40 of 200 survived, in the review that asked for this test).
func TestFileConcurrentPutsAllKept(t *testing.T) {
	path := t.TempDir() + "/creds.yaml"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := LoadFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 25 {
				if err := f.Put(context.Background(), Record{AccessKey: fmt.Sprintf("K%d-%d", w, i), Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if f, err := LoadFile(path); err != nil || f.Len() != 200 {
		t.Errorf("%v records (%v), want 200", f.Len(), err)
	}
}

// A second YAML document in a credentials file was read by nobody, and the
// next change erased it (found by a review): refused, as in the config.
func TestParseFileRefusesASecondDocument(t *testing.T) {
	if _, err := ParseFile([]byte("credentials: [{access_key: A1, secret: s, user_id: u, project_id: p}]\n---\ncredentials: [{access_key: A2, secret: s, user_id: u, project_id: p}]\n"), "two.yaml"); err == nil || !strings.Contains(err.Error(), "one YAML document") {
		t.Errorf("a file of two documents: %v; want it refused", err)
	}
	if _, err := ParseFile([]byte("credentials: []\n---\n"), "trailing.yaml"); err != nil {
		t.Errorf("an empty second document: %v", err)
	}
}

// Batch applies every change made in it to the file at once: the file is
// written at the end (not each time), a failed batch writes nothing, and
// another writer waits for the batch and keeps its changes.
func TestFileBatch(t *testing.T) {
	path := t.TempDir() + "/creds.yaml"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := func(key string) Record {
		return Record{AccessKey: key, Secret: "s", UserID: "u", ProjectID: "p", Enabled: true, Source: "keystone"}
	}
	onDisk := func() int {
		t.Helper()
		g, err := LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return g.Len()
	}
	other := make(chan error)
	err = f.Batch(func() error {
		for _, k := range []string{"A", "B", "C"} {
			if err := f.Put(ctx, rec(k)); err != nil {
				return err
			}
		}
		if deleted, err := f.DeleteIf(ctx, "B", func(cur Record, _ error) bool { return cur.Source == "keystone" }); !deleted || err != nil {
			t.Errorf("DeleteIf in a batch: %v, %v", deleted, err)
		}
		if err := f.Update(ctx, "C", func(cur Record, _ bool) (Record, error) { cur.Enabled = false; return cur, nil }); err != nil {
			return err
		}
		if n := onDisk(); n != 0 {
			t.Errorf("%d records on disk during the batch, want 0", n)
		}
		go func() {
			g, err := LoadFile(path)
			if err == nil {
				err = g.Put(ctx, rec("D"))
			}
			other <- err
		}()
		select {
		case err := <-other:
			t.Errorf("another writer wrote during the batch (%v)", err)
		case <-time.After(100 * time.Millisecond):
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	g, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := g.Get(ctx, "A")
	c, errC := g.Get(ctx, "C")
	_, errB := g.Get(ctx, "B")
	_, errD := g.Get(ctx, "D")
	if g.Len() != 3 || errA != nil || !a.Enabled || errC != nil || c.Enabled || !errors.Is(errB, ErrNotFound) || errD != nil {
		t.Errorf("after the batch and the other writer: %d records (A %v, B %v, C %v enabled %v, D %v); want A, C disabled, D", g.Len(), errA, errB, errC, c.Enabled, errD)
	}

	before, _ := os.Stat(path)
	if err := f.Batch(func() error { return f.Put(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("a batch that changed nothing rewrote the file (every proxy watching it reloads)")
	}

	failed := errors.New("stop")
	if err := f.Batch(func() error { _ = f.Put(ctx, rec("E")); return failed }); !errors.Is(err, failed) {
		t.Fatalf("a failed batch returned %v", err)
	}
	if _, err := f.Get(ctx, "E"); !errors.Is(err, ErrNotFound) {
		t.Error("a failed batch's change is still held in memory")
	}
	if n := onDisk(); n != 3 {
		t.Errorf("%d records on disk after a failed batch, want 3", n)
	}
}

// A rewrite keeps the file's mode and group: the proxy reads a file kept
// as root:ec2proxy 0640 (found by a review: each change left it 0600, and
// the service could no longer read it).
func TestFileRewriteKeepsModeAndGroup(t *testing.T) {
	path := t.TempDir() + "/creds.yaml"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid() // another group than a new file's, where we may
	if os.Geteuid() == 0 {
		gid = 65534 // nogroup
	} else if groups, _ := os.Getgroups(); len(groups) > 0 {
		for _, g := range groups {
			if g != gid {
				gid = g
				break
			}
		}
	}
	if err := os.Chown(path, -1, gid); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Put(context.Background(), Record{AccessKey: "K", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := int(st.Sys().(*syscall.Stat_t).Gid); st.Mode().Perm() != 0o640 || got != gid {
		t.Errorf("after a rewrite: mode %04o group %d; want 0640 group %d", st.Mode().Perm(), got, gid)
	}
}

// A credentials file reached through a symbolic link (configuration
// management, a shared volume) is changed where it is: the link stays a
// link, and the lock is the target's, which a command given the real path
// also takes (found by a review: the link was replaced by a file of its
// own, and the file the proxies read kept the old records).
func TestFileThroughASymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/real", 0o700); err != nil {
		t.Fatal(err)
	}
	target, link := dir+"/real/creds.yaml", dir+"/creds.yaml"
	if err := os.WriteFile(target, []byte("credentials: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real/creds.yaml", link); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.Put(ctx, Record{AccessKey: "A", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := f.Batch(func() error { return f.Put(ctx, Record{AccessKey: "B", Secret: "s", UserID: "u", ProjectID: "p"}) }); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link is no longer a link: %v %v", st.Mode(), err)
	}
	real, err := LoadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"A", "B"} {
		if _, err := real.Get(ctx, key); err != nil {
			t.Errorf("the link's target lacks %s: %v", key, err)
		}
	}
	if _, err := os.Stat(dir + "/real/.creds.yaml.lock"); err != nil {
		t.Errorf("no lock beside the target: %v", err)
	}
	if _, err := os.Stat(dir + "/.creds.yaml.lock"); err == nil {
		t.Error("a lock beside the link: a command given the target's path would not wait for this one")
	}

	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, Record{AccessKey: "C", Secret: "s", UserID: "u", ProjectID: "p"}); err == nil || !strings.Contains(err.Error(), "is a symbolic link to a file that does not exist") {
		t.Errorf("Put through a dangling link = %v; want it refused", err)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Error("a dangling link's target was created")
	}
}

// Found by a review: the lock file beside the credentials file was made
// 0600 by whoever changed the file first, usually root running a creds
// command, and from then on the account owning the file (the service's,
// running 'creds sync -watch') could not open it, so could not change the
// file at all. Root now gives the lock the file's owner, group and mode.
func TestLockFileBelongsToTheFilesOwner(t *testing.T) {
	path, lockPath := nobodysFile(t, 0o640)
	putRecord(t, path, "K")
	st, err := os.Stat(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 || st.Mode().Perm() != 0o640 {
		t.Errorf("lock file %d:%d %04o; want the credentials file's 65534:65534 0640", sys.Uid, sys.Gid, st.Mode().Perm())
	}
	// And the owner can take it.
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("no flock command to take the lock as nobody")
	}
	cmd := exec.Command(flock, "-n", lockPath, "true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nobody taking the lock: %v %s", err, out)
	}
}

// A lock root made before the file was given to the service account (or
// by an earlier version) cannot be opened by the file's owner; the error
// says whose each is and the command that fixes it.
func TestLockOfAnotherOwnerExplainsItself(t *testing.T) {
	if path := os.Getenv("EC2PROXY_TEST_LOCK_AS_OWNER"); path != "" {
		f, err := LoadFile(path)
		if err == nil {
			err = f.Put(context.Background(), Record{AccessKey: "K2", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true})
		}
		fmt.Print(err) // to the parent test, which checks it
		return
	}
	path, lockPath := nobodysFile(t, 0o600)
	dir := filepath.Dir(path)
	// This test binary, where nobody can run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/credstore.test"
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestLockOfAnotherOwnerExplainsItself$")
	cmd.Env = append(os.Environ(), "EC2PROXY_TEST_LOCK_AS_OWNER="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as the file's owner: %v %s", err, out)
	}
	for _, want := range []string{"permission denied", "belongs to 0:0 and the file to 65534:65534", "run `chown 65534:65534 " + lockPath + "`"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the owner's change: %q; want it to say %q", out, want)
		}
	}
}

// nobodysFile is a credentials file of mode owned by nobody (65534), in a
// directory nobody can reach, beside a lock file root left as its own
// 0600 (as the first creds command, or an earlier version, made it). It
// skips the test unless it runs as root.
func nobodysFile(t *testing.T, mode os.FileMode) (path, lockPath string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to own files as another user")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path, lockPath = dir+"/creds.yaml", dir+"/.creds.yaml.lock"
	if err := os.WriteFile(path, []byte("credentials: []\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, lockPath
}

// putRecord loads the credentials file at path and puts a record for ak.
func putRecord(t *testing.T, path, ak string) {
	t.Helper()
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Put(context.Background(), Record{AccessKey: ak, Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
}
