package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/credstore"
)

// creds create -access AK checks that AK is free and writes it in one step
// under the file's lock: it checked the copy of the file it had loaded, then
// wrote under the lock, and a credential with that access key written
// meanwhile (another creds create, a sync) was replaced, both commands
// reporting success with different secrets (found by a review).
func TestCredsCreateDoesNotReplaceAKeyMadeMeanwhile(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(creds, []byte("credentials: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := standaloneFileConfig(t, dir, creds)

	// Hold the lock the way another creds command does.
	lock, err := os.OpenFile(filepath.Join(dir, ".credentials.yaml.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI("creds", "create", "-config", cfg, "-access", "AK", "-user-id", "u2", "-project-id", "p2")
		done <- result{code, out, errOut}
	}()
	time.Sleep(500 * time.Millisecond) // create has checked AK is free and waits for the lock
	// The other command's change: AK created with its own secret.
	if err := os.WriteFile(creds, []byte("credentials:\n- {access_key: AK, secret: FIRST-SECRET, user_id: u1, project_id: p1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	lock.Close()
	res := <-done

	f, err := credstore.LoadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.Get(context.Background(), "AK")
	if r.Secret != "FIRST-SECRET" {
		t.Errorf("the credential AK made meanwhile was replaced: secret %q, user %q (was FIRST-SECRET, u1); creds create exited %d:\n%s%s",
			r.Secret, r.UserID, res.code, res.stdout, res.stderr)
	}
	if res.code == 0 || !strings.Contains(res.stderr, "already exists") {
		t.Errorf("creds create exited %d, want 1 with \"already exists\"", res.code)
	}
}

// The same with Redis (a WATCH): of several creds create run at once with
// one -access, one succeeds; the others each printed a secret that did not
// work.
func TestCredsCreateConcurrentlyOneSucceedsRedis(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	client, prefix := syncTestRedis(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {store: redis, allow_plaintext: true}\nredis: {addrs: ['"+
		client.Options().Addr+"'], key_prefix: '"+prefix+"'}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	const n = 8
	type result struct {
		code   int
		stdout string
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			code, out, _ := runCLI("creds", "create", "-config", cfg, "-access", "AK", "-user-id", "u", "-project-id", "p")
			results <- result{code, out}
		}()
	}
	close(start)
	var succeeded []string
	for range n {
		if r := <-results; r.code == 0 {
			succeeded = append(succeeded, r.stdout)
		}
	}
	stored, _ := client.HGet(context.Background(), prefix+"cred:{AK}", "secret").Result()
	if len(succeeded) != 1 {
		t.Errorf("%d of %d 'creds create -access AK' reported success (stored secret %s):\n%s", len(succeeded), n, stored, strings.Join(succeeded, "---\n"))
	}
}
