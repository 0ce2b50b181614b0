package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// keystoneList stands in for Keystone's credential list where it must
// hold what a real Keystone rarely does (an invalid credential), or change
// between rounds.
type keystoneList struct {
	mu    sync.Mutex
	creds []keystoneclient.EC2Credential
}

func (k *keystoneList) ListEC2Credentials(context.Context) ([]keystoneclient.EC2Credential, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]keystoneclient.EC2Credential(nil), k.creds...), nil
}

func (k *keystoneList) set(creds ...keystoneclient.EC2Credential) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.creds = creds
}

func ksCred(access string) keystoneclient.EC2Credential {
	return keystoneclient.EC2Credential{Access: access, Secret: "s-" + access, UserID: "u1", ProjectID: "p1"}
}

func fileStoreAt(t *testing.T, path string, records ...credstore.Record) func() (credStore, func(), error) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := credstore.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := f.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return func() (credStore, func(), error) {
		f, err := credstore.LoadFile(path)
		return f, func() {}, err
	}
}

func storedKeys(t *testing.T, open func() (credStore, func(), error)) map[string]credstore.Record {
	t.Helper()
	store, done, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	got := map[string]credstore.Record{}
	store.List(context.Background(), func(r credstore.Record, err error) error {
		if err == nil {
			got[r.AccessKey] = r
		}
		return nil
	})
	return got
}

// One credential Keystone holds that is not valid here (an access key over
// 128 bytes, no project) is reported and counted, and the sync goes on: the
// others are added and a credential gone from Keystone is removed (found by
// a review: the first failed write ended the sync, before its removals, so
// every sync kept revoked keys; and "added" was printed before the write).
func TestSyncGoesOnPastABadCredential(t *testing.T) {
	long := strings.Repeat("A", 130)
	noProject := ksCred("NOPROJECT")
	noProject.ProjectID = ""
	kc := &keystoneList{}
	kc.set(ksCred("K1"), ksCred(long), noProject, ksCred("K3"))
	open := fileStoreAt(t, filepath.Join(t.TempDir(), "creds.yaml"),
		credstore.Record{AccessKey: "K2", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"},
		credstore.Record{AccessKey: "LOCAL", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true})
	var stdout, stderr bytes.Buffer
	err := syncRounds(context.Background(), kc, open, false, 0, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "2 credential(s) not synced") {
		t.Errorf("sync with two bad credentials: %v; want an error counting them", err)
	}
	got := storedKeys(t, open)
	for _, k := range []string{"K1", "K3", "LOCAL"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from the store after the sync", k)
		}
	}
	for _, k := range []string{"K2", long, "NOPROJECT"} {
		if _, ok := got[k]; ok {
			t.Errorf("%.20s... in the store after the sync", k)
		}
	}
	if strings.Contains(stdout.String(), "added "+long) || strings.Contains(stdout.String(), "NOPROJECT") {
		t.Errorf("a credential not written is reported as added:\n%s", stdout.String())
	}
	for _, want := range []string{"not synced " + strings.Repeat("A", 40) + "... (130 bytes)", "longer than 128 bytes", "not synced NOPROJECT", "project id is empty"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "2 added, 0 updated, 1 removed, 0 unchanged, 0 skipped, 2 failed") {
		t.Errorf("summary:\n%s", stdout.String())
	}
}

// -watch on a file store: what an operator changes between rounds (a
// local disable, a credential created here) stays (found by a review: the
// store was read once and each round wrote that copy back whole).
func TestSyncWatchKeepsChangesMadeMeanwhile(t *testing.T) {
	kc := &keystoneList{}
	kc.set(ksCred("K1"))
	path := filepath.Join(t.TempDir(), "creds.yaml")
	open := fileStoreAt(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stdout, stderr syncBuffer
	go func() { done <- syncRounds(ctx, kc, open, false, time.Second, &stdout, &stderr) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s\nstdout:\n%s\nstderr:\n%s", what, stdout.String(), stderr.String())
			}
		}
	}
	waitFor("first round", func() bool { _, ok := storedKeys(t, open)["K1"]; return ok })
	// The operator, between rounds (each a one-off, as the CLI is).
	store, _, _ := open()
	r := storedKeys(t, open)["K1"]
	r.Enabled = false
	if err := store.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, credstore.Record{AccessKey: "LOCAL", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	rounds := strings.Count(stdout.String(), "sync: ")
	kc.set(ksCred("K1"), ksCred("K2"))
	waitFor("next round", func() bool { return strings.Count(stdout.String(), "sync: ") > rounds })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := storedKeys(t, open)
	if got["K1"].Enabled {
		t.Error("a local disable was undone by the next round")
	}
	if _, ok := got["LOCAL"]; !ok {
		t.Error("a credential created meanwhile was deleted by the next round")
	}
	if _, ok := got["K2"]; !ok {
		t.Error("the next round did not add Keystone's new credential")
	}
}

// syncBuffer is a bytes.Buffer safe to read while the sync writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// An https Keystone with a private CA: sync trusts OS_CACERT (or
// keystone.tls.ca_file), as openstackclient does (found by a review: the
// CA was ignored, and sync failed on an unknown authority).
func TestSyncTrustsTheOpenrcCA(t *testing.T) {
	ks := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error": {"code": 401}}`, http.StatusUnauthorized)
	}))
	defer ks.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ks.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OS_AUTH_URL", ks.URL+"/v3")
	t.Setenv("OS_USERNAME", "admin")
	t.Setenv("OS_PASSWORD", "pw")
	for _, c := range []struct {
		name, cacert string
		want         string
	}{
		{"no CA", "", "certificate"},
		{"OS_CACERT", ca, "401"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("OS_CACERT", c.cacert)
			cfg := configs.Default()
			kc, err := adminKeystone(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = kc.ListEC2Credentials(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("listing with %s: %v; want an error naming %q", c.name, err, c.want)
			}
		})
	}
}

// Deleting a credential sync manages says that the next sync brings it
// back, and what to do instead (found by a review: "deleted", then the
// sync re-added it, enabled).
func TestDeleteOfAKeystoneCredentialWarns(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	cfg := standaloneFileConfig(t, dir, creds)
	fileStoreAt(t, creds,
		credstore.Record{AccessKey: "KS1", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true, Source: "keystone"},
		credstore.Record{AccessKey: "LOCAL1", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true})
	code, stdout, stderr := runCLI("creds", "delete", "-config", cfg, "KS1")
	if code != 0 || !strings.Contains(stdout, "deleted KS1") || !strings.Contains(stderr, "adds it again") || !strings.Contains(stderr, "creds disable") {
		t.Errorf("deleting a Keystone credential: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI("creds", "delete", "-config", cfg, "LOCAL1")
	if code != 0 || !strings.Contains(stdout, "deleted LOCAL1") || strings.Contains(stderr, "adds it again") {
		t.Errorf("deleting a local credential: %d\n%s\n%s", code, stdout, stderr)
	}
}

// The encryption key in a file only its owner reads: genkey -o makes one
// (never over an existing file), and check-config warns of secrets every
// user can read (found by a review: the documented "genkey > FILE" made
// a 0644 key under the usual umask, and nothing said so).
func TestKeyFilesStayPrivate(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	key := filepath.Join(dir, "secret.key")
	if code, _, stderr := runCLI("creds", "genkey", "-o", key); code != 0 || !strings.Contains(stderr, "mode 0600") {
		t.Fatalf("genkey -o: %d %s", code, stderr)
	}
	before, _ := os.ReadFile(key)
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 || len(bytes.TrimSpace(before)) != 64 {
		t.Errorf("the key file: %v %v %q", st, err, before)
	}
	if code, _, stderr := runCLI("creds", "genkey", "-o", key); code != 1 || !strings.Contains(stderr, "exists") {
		t.Errorf("genkey -o over an existing key: %d %s; want it refused", code, stderr)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Error("genkey -o replaced an existing key")
	}

	creds := filepath.Join(dir, "credentials.yaml")
	cfg := standaloneFileConfig(t, dir, creds)
	os.WriteFile(creds, nil, 0o640)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("check-config, credentials file 0640: %d %s; want OK without a warning", code, stderr)
	}
	os.Chmod(creds, 0o644)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 0 || !strings.Contains(stderr, "warning: credentials.file: "+creds+" is mode 0644") {
		t.Errorf("check-config, credentials file 0644: %d %s; want OK with a warning naming it", code, stderr)
	}
}

// unreadableStore lists some of its records as unreadable (sealed with a
// key no longer configured), as the Redis store does: what could be read,
// the secret empty, and the error.
type unreadableStore struct {
	credStore
	unreadable map[string]bool
}

func (u unreadableStore) List(ctx context.Context, fn func(credstore.Record, error) error) error {
	return u.credStore.List(ctx, func(r credstore.Record, err error) error {
		if u.unreadable[r.AccessKey] {
			r.Secret = ""
			return fn(r, credstore.ErrNoKey)
		}
		return fn(r, err)
	})
}

// A stored record that cannot be read here is never rewritten (found by
// reviews: such records were skipped without a word; then a fix rewrote
// them from Keystone with this host's keyring, which may be stale or
// absent): from Keystone and still there, it is named and counted failed;
// from Keystone and gone there, removed; created here, left alone.
func TestSyncLeavesOrRemovesUnreadableRecords(t *testing.T) {
	kc := &keystoneList{}
	kc.set(ksCred("SEALED"))
	open := fileStoreAt(t, filepath.Join(t.TempDir(), "creds.yaml"),
		credstore.Record{AccessKey: "SEALED", Secret: "old", UserID: "u1", ProjectID: "p1", Enabled: false, Source: "keystone"},
		credstore.Record{AccessKey: "GONE", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"},
		credstore.Record{AccessKey: "LOCALSEALED", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true})
	wrapped := func() (credStore, func(), error) {
		s, done, err := open()
		return unreadableStore{credStore: s, unreadable: map[string]bool{"SEALED": true, "GONE": true, "LOCALSEALED": true}}, done, err
	}
	var stdout, stderr bytes.Buffer
	err := syncRounds(context.Background(), kc, wrapped, false, 0, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 credential(s) not synced") {
		t.Errorf("sync: %v; want SEALED counted failed", err)
	}
	for _, want := range []string{"removed GONE", "0 added, 0 updated, 1 removed, 0 unchanged, 0 skipped, 1 failed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "not synced SEALED: the stored record cannot be read here") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	got := storedKeys(t, open)
	if r := got["SEALED"]; r.Secret != "old" {
		t.Errorf("SEALED after the sync: %+v; want it as it was", r)
	}
	if _, ok := got["GONE"]; ok {
		t.Error("GONE, from Keystone and gone there, was kept")
	}
	if _, ok := got["LOCALSEALED"]; !ok {
		t.Error("a record created here was removed")
	}
}

// interleaved runs hook before its first write: another command changing
// the store while a sync round runs.
type interleaved struct {
	credStore
	once *sync.Once
	hook func()
}

func (s interleaved) Update(ctx context.Context, key string, fn func(credstore.Record, bool) (credstore.Record, error)) error {
	s.once.Do(s.hook)
	return s.credStore.Update(ctx, key, fn)
}

// A 'creds disable' made while a sync round runs stays disabled when the
// round updates that credential (found by a review: the round wrote back
// the enabled flag it had listed at its start).
func TestSyncKeepsADisableMadeDuringTheRound(t *testing.T) {
	kc := &keystoneList{}
	k1 := ksCred("K1")
	k1.Secret = "rotated-in-keystone"
	kc.set(k1)
	open := fileStoreAt(t, filepath.Join(t.TempDir(), "creds.yaml"),
		credstore.Record{AccessKey: "K1", Secret: "s-K1", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"})
	disable := func() {
		other, _, _ := open()
		r, _ := other.Get(context.Background(), "K1")
		r.Enabled = false
		if err := other.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	wrapped := func() (credStore, func(), error) {
		s, done, err := open()
		return interleaved{s, &sync.Once{}, disable}, done, err
	}
	var stdout, stderr bytes.Buffer
	if err := syncRounds(context.Background(), kc, wrapped, false, 0, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if r := storedKeys(t, open)["K1"]; r.Enabled || r.Secret != "rotated-in-keystone" {
		t.Errorf("K1 after the round: %+v; want Keystone's new secret, and disabled", r)
	}
}

// creds create in the Keystone identity mode says that Keystone must hold
// the credential too (found by a review: it succeeded without a word, and
// every request with the key was then refused); creds show and list take
// either spelling of the secrets flag.
func TestCredsCreateInKeystoneMode(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: keystone}\nkeystone: {auth_url: 'http://127.0.0.1:5000', service_user: {name: ec2proxy, password: pw}}\n"+
		"credentials: {store: file, file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	code, _, stderr := runCLI("creds", "create", "-config", cfg, "-access", "AKK", "-user-id", "u", "-project-id", "p")
	if code != 0 || !strings.Contains(stderr, "Keystone must hold this credential too") || !strings.Contains(stderr, "creds show AKK -show-secret") {
		t.Errorf("creds create, keystone mode: %d\n%s", code, stderr)
	}
	for _, c := range [][]string{{"creds", "show", "-config", cfg, "-show-secrets", "AKK"}, {"creds", "list", "-config", cfg, "-show-secret"}} {
		if code, stdout, stderr := runCLI(c...); code != 0 || !strings.Contains(stdout, "AKK") {
			t.Errorf("%v: %d %s %s", c, code, stdout, stderr)
		}
	}
}

// An empty password file is named by its setting (found by a review: the
// Keystone client's "auth URL, username and password are required" named
// neither, and the auth URL was set).
func TestCheckConfigNamesAnEmptyPasswordFile(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	pw := filepath.Join(dir, "ks-password")
	os.WriteFile(pw, []byte("\n"), 0o600)
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, nil, 0o600)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: keystone}\nkeystone: {auth_url: 'http://127.0.0.1:5000', service_user: {name: ec2proxy, password_file: "+pw+"}}\n"+
		"credentials: {store: file, file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 1 || !strings.Contains(stderr, "keystone.service_user.password_file: "+pw+" is empty") {
		t.Errorf("check-config, empty password file: %d %s", code, stderr)
	}
	// An application credential's secret file: the same checks, and the
	// same warning when every user may read it.
	os.Chmod(pw, 0o644)
	os.WriteFile(cfg, []byte("identity: {mode: keystone}\nkeystone: {auth_url: 'http://127.0.0.1:5000', application_credential: {id: ac1, secret_file: "+pw+"}}\n"+
		"credentials: {store: file, file: "+creds+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 1 || !strings.Contains(stderr, "keystone.application_credential.secret_file: "+pw+" is empty") {
		t.Errorf("check-config, empty application credential secret file: %d %s", code, stderr)
	}
	os.WriteFile(pw, []byte("secret\n"), 0o644)
	if code, out, stderr := runCLI("check-config", "-config", cfg); !strings.Contains(out+stderr, "keystone.application_credential.secret_file: "+pw+" is mode 0644") {
		t.Errorf("check-config, world-readable application credential secret file: %d %s%s", code, out, stderr)
	}
}

// An empty Redis password file means Redis without AUTH, and serve runs
// so: check-config warns, it does not refuse (found by a review: this
// session made it an error in check-config only).
func TestCheckConfigWarnsOfAnEmptyRedisPasswordFile(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	pw := filepath.Join(dir, "redis-password")
	os.WriteFile(pw, nil, 0o600)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("identity: {mode: standalone}\ncredentials: {store: redis, allow_plaintext: true}\nredis: {addrs: ['127.0.0.1:6379'], password_file: "+pw+"}\nroutes: [{path_prefix: /, backend: 'http://127.0.0.1:9'}]\n"), 0o600)
	if code, _, stderr := runCLI("check-config", "-config", cfg); code != 0 || !strings.Contains(stderr, "warning: redis.password_file: "+pw+" is empty") {
		t.Errorf("check-config, empty Redis password file: %d %s; want OK with a warning", code, stderr)
	}
}

// An access key with a newline or a terminal escape cannot forge lines of
// sync's output (found by a review: a key ending "\nsync: 0 added, ..."
// printed a summary line of its own).
func TestSyncOutputQuotesOddKeys(t *testing.T) {
	odd := "K1 (user u1, project p1)\nsync: 0 added, 0 updated, 0 removed\n\x1b[2J"
	kc := &keystoneList{}
	kc.set(ksCred(odd))
	open := fileStoreAt(t, filepath.Join(t.TempDir(), "creds.yaml"))
	var stdout, stderr bytes.Buffer
	if err := syncRounds(context.Background(), kc, open, false, 0, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 || strings.Contains(stdout.String(), "\x1b") {
		t.Errorf("stdout has %d lines (want 2: the addition, the summary), or an escape:\n%q", n, stdout.String())
	}
	if _, ok := storedKeys(t, open)[odd]; !ok {
		t.Error("the odd key was not stored as it is")
	}
}

// batchCounter counts a file store's batches, and the writes made outside
// one.
type batchCounter struct {
	*credstore.File
	inBatch          bool
	batches, outside int
}

func (b *batchCounter) Batch(fn func() error) error {
	b.batches++
	return b.File.Batch(func() error {
		b.inBatch = true
		defer func() { b.inBatch = false }()
		return fn()
	})
}

func (b *batchCounter) Update(ctx context.Context, key string, fn func(credstore.Record, bool) (credstore.Record, error)) error {
	if !b.inBatch {
		b.outside++
	}
	return b.File.Update(ctx, key, fn)
}

func (b *batchCounter) DeleteIf(ctx context.Context, key string, remove func(credstore.Record, error) bool) (bool, error) {
	if !b.inBatch {
		b.outside++
	}
	return b.File.DeleteIf(ctx, key, remove)
}

// A sync round changes a file store in one batch: each change on its own
// read and rewrote the whole file (a first sync of 1000 credentials took
// 45 s; BenchmarkSyncIntoAFile).
func TestSyncChangesAFileInOneBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.yaml")
	fileStoreAt(t, path,
		credstore.Record{AccessKey: "LOCAL", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true},
		credstore.Record{AccessKey: "GONE", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"})
	f, err := credstore.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kc := &keystoneList{}
	var creds []keystoneclient.EC2Credential
	for i := range 50 {
		creds = append(creds, ksCred(fmt.Sprintf("K%02d", i)))
	}
	kc.set(creds...)
	store := &batchCounter{File: f}
	var stdout, stderr bytes.Buffer
	if _, err := syncOnce(context.Background(), kc, store, false, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	if store.batches != 1 || store.outside != 0 {
		t.Errorf("%d batches and %d writes outside one; want 1 and 0", store.batches, store.outside)
	}
	got := storedKeys(t, func() (credStore, func(), error) { f, err := credstore.LoadFile(path); return f, func() {}, err })
	if _, gone := got["GONE"]; len(got) != 51 || gone || !strings.Contains(stdout.String(), "50 added, 0 updated, 1 removed") {
		t.Errorf("%d records after the sync (GONE kept: %v)\n%s", len(got), gone, stdout.String())
	}
	before, _ := os.Stat(path)
	if _, err := syncOnce(context.Background(), kc, store, false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("a round that changed nothing rewrote the file")
	}
}

// recreateBeforeRemoval runs hook before the sync removes a record: a
// 'creds create' of the same access key racing the sync.
type recreateBeforeRemoval struct {
	credStore
	hook func()
}

func (s recreateBeforeRemoval) DeleteIf(ctx context.Context, key string, remove func(credstore.Record, error) bool) (bool, error) {
	s.hook()
	return s.credStore.DeleteIf(ctx, key, remove)
}

// A credential gone from Keystone is removed only if it is still the one
// from Keystone when it is removed: one made here with the same access key
// since the round listed the store stays (a removal was an unconditional
// delete).
func TestSyncKeepsARecordMadeHereMeanwhile(t *testing.T) {
	open := fileStoreAt(t, filepath.Join(t.TempDir(), "creds.yaml"),
		credstore.Record{AccessKey: "GONE", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"})
	recreate := func() {
		other, _, _ := open()
		if err := other.Put(context.Background(), credstore.Record{AccessKey: "GONE", Secret: "local", UserID: "u2", ProjectID: "p2", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	store, _, err := open()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if _, err := syncOnce(context.Background(), &keystoneList{}, recreateBeforeRemoval{store, recreate}, false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if r, ok := storedKeys(t, open)["GONE"]; !ok || r.Secret != "local" || !strings.Contains(stderr.String(), "skipped GONE") {
		t.Errorf("GONE after the sync: %+v (kept: %v)\n%s%s; want the record made here, kept and reported", r, ok, stdout.String(), stderr.String())
	}
}

// BenchmarkSyncIntoAFile: the first sync of 1000 Keystone credentials
// into an empty credentials file.
func BenchmarkSyncIntoAFile(b *testing.B) {
	kc := &keystoneList{}
	var creds []keystoneclient.EC2Credential
	for i := range 1000 {
		creds = append(creds, ksCred(fmt.Sprintf("AKIA%016d", i)))
	}
	kc.set(creds...)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "creds.yaml")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		f, err := credstore.LoadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := syncOnce(context.Background(), kc, f, false, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// dirAwayDuringBatch makes the batch's write fail: the file's directory
// is moved away once the round's changes are made.
type dirAwayDuringBatch struct {
	*credstore.File
	dir string
}

func (d dirAwayDuringBatch) Batch(fn func() error) error {
	return d.File.Batch(func() error {
		err := fn()
		os.Rename(d.dir, d.dir+".away")
		return err
	})
}

// A round whose write fails prints none of its changes, and says nothing
// was changed (found by a review: "removed K" was printed for a key the
// file still held).
func TestSyncFailedWritePrintsNoChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "creds.yaml")
	fileStoreAt(t, path, credstore.Record{AccessKey: "REVOKED", Secret: "s", UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"})
	f, err := credstore.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kc := &keystoneList{}
	kc.set(ksCred("NEW1"))
	var stdout, stderr bytes.Buffer
	n, err := syncOnce(context.Background(), kc, dirAwayDuringBatch{f, dir}, false, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "nothing was changed") || n != (syncCounts{}) {
		t.Errorf("sync = %+v, %v; want an error saying nothing was changed, no counts", n, err)
	}
	if strings.Contains(stdout.String(), "added") || strings.Contains(stdout.String(), "removed") {
		t.Errorf("changes printed that were not made:\n%s", stdout.String())
	}
}

// A sync into a credentials file that does not exist yet creates it, as
// creds create does; it failed with "no such file" (found by a review).
func TestSyncCreatesTheCredentialsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.yaml")
	cfg := &configs.Config{Credentials: configs.Credentials{Store: configs.StoreFile, File: path}}
	kc := &keystoneList{}
	kc.set(ksCred("K1"), ksCred("K2"))
	var stdout, stderr bytes.Buffer
	err := syncRounds(context.Background(), kc, func() (credStore, func(), error) { return openStoreCreating(cfg, &stderr) }, false, 0, &stdout, &stderr)
	if err != nil {
		t.Fatalf("sync into a new file: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	got := storedKeys(t, func() (credStore, func(), error) { f, err := credstore.LoadFile(path); return f, func() {}, err })
	if len(got) != 2 || !strings.Contains(stderr.String(), "creating "+path) {
		t.Errorf("%d records in the new file; stderr: %s", len(got), stderr.String())
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the new file: %v, %v; want mode 0600", st, err)
	}
}
