package keystoneclient

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// memShared is SharedTokens in a map, standing in for Redis between two
// clients of one process (test/ runs the real thing across processes).
type memShared struct {
	mu     sync.Mutex
	tokens map[string][]byte
	ttl    map[string]time.Duration
	fail   bool
}

func (m *memShared) GetToken(_ context.Context, ak string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errors.New("redis down")
	}
	return m.tokens[ak], nil
}

func (m *memShared) PutToken(_ context.Context, ak string, tok []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("redis down")
	}
	m.tokens[ak], m.ttl[ak] = tok, ttl
	return nil
}

func (m *memShared) DeleteToken(_ context.Context, ak string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("redis down")
	}
	delete(m.tokens, ak)
	return nil
}

func (m *memShared) DeleteTokenIf(_ context.Context, ak string, stale func([]byte) bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return false, errors.New("redis down")
	}
	if tok, ok := m.tokens[ak]; ok && stale(tok) {
		delete(m.tokens, ak)
		return true, nil
	}
	return false, nil
}

func TestTokenSharedBetweenReplicas(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	f.now = clock.now
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	var results []string
	replica := func() *Client {
		c := newTestClient(t, srv.URL, &clock)
		c.cfg.Shared = shared
		c.cfg.SharedObserve = func(r string) { results = append(results, r) }
		return c
	}
	a, b := replica(), replica()
	ctx := context.Background()
	idA, err := a.Identity(ctx, "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := shared.ttl["AK"]; ttl <= 55*time.Minute-time.Second || ttl > 55*time.Minute {
		t.Errorf("shared for %v, want the token's life minus the margin (55m)", ttl)
	}
	idB, err := b.Identity(ctx, "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.ec2Calls.Load(); n != 1 {
		t.Fatalf("%d ec2tokens calls for two replicas, want 1", n)
	}
	if idB.Token() != idA.Token() || idB.ProjectID != idA.ProjectID || idB.RolesHeader != idA.RolesHeader ||
		!idB.ExpiresAt().Equal(idA.ExpiresAt()) {
		t.Errorf("replica B got %+v, want A's %+v", idB, idA)
	}
	if got := results; len(got) != 3 || got[0] != "miss" || got[1] != "stored" || got[2] != "hit" {
		t.Errorf("shared results %v, want [miss stored hit]", got)
	}

	// A shared token inside the renewal margin is not reused: B asks Keystone.
	clock.advance(56 * time.Minute)
	b.Forget("AK")
	if id, _ := b.Identity(ctx, "AK", key); id.Token() == idA.Token() {
		t.Error("B reused a token inside the renewal margin")
	}
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("%d ec2tokens calls, want 2", n)
	}

	// Redis trouble only costs the sharing, never the request.
	shared.fail = true
	b.Forget("AK")
	if _, err := b.Identity(ctx, "AK", key); err != nil {
		t.Fatalf("with the shared store down: %v", err)
	}
	// Garbage in the shared store is ignored.
	shared.fail = false
	shared.tokens["AK"] = []byte("not json")
	a.Forget("AK")
	if id, err := a.Identity(ctx, "AK", key); err != nil || id.Token() == "" {
		t.Fatalf("with garbage shared: %+v, %v", id, err)
	}
}

// A credential change deletes the shared token, then every replica
// forgets its own. An exchange in flight across the change must not put
// its token (from before the change) back in the store, nor may a replica
// that shared one before it heard of the change leave it there (found by
// a review: every replica then took the old token from the store).
func TestForgetRacesShare(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	c := sharingReplica(t, srv, &clock, shared)
	// In flight across the change: not shared.
	f.set(func(f *fakeKeystone) { f.ec2Delay = 300 * time.Millisecond })
	done := make(chan struct{})
	go func() { defer close(done); c.Identity(context.Background(), "AK", key) }()
	time.Sleep(100 * time.Millisecond)
	shared.DeleteToken(context.Background(), "AK") // the change
	c.Forget("AK")                                 // its announcement, heard
	<-done
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok != nil {
		t.Error("a token exchanged across the change was shared")
	}
	// Shared before this replica heard of the change: deleted when it does.
	f.set(func(f *fakeKeystone) { f.ec2Delay = 0 })
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok == nil {
		t.Fatal("the new token was not shared")
	}
	c.Forget("AK")
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok != nil {
		t.Error("Forget left the shared token")
	}
}

// sharingReplica is a ready Client of srv sharing tokens through shared.
func sharingReplica(t *testing.T, srv *httptest.Server, clock *testClock, shared *memShared) *Client {
	t.Helper()
	c, err := New(Config{AuthURL: srv.URL, Username: "ec2proxy", Password: "svcpass", Timeout: time.Second,
		TokenMargin: 5 * time.Minute, Now: clock.now, Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// Found by a review: a Forget of one access key stopped the sharing of
// every other key's token being exchanged at the time (c.forgets was one
// counter for all keys): while change events streamed (creds reencrypt, a
// large sync), replicas stopped sharing tokens and each exchanged for
// itself.
func TestForgetOfAnotherKeyKeepsSharing(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	a, b := sharingReplica(t, srv, &clock, shared), sharingReplica(t, srv, &clock, shared)
	f.set(func(f *fakeKeystone) { f.ec2Delay = 300 * time.Millisecond })
	done := make(chan struct{})
	go func() { defer close(done); a.Identity(context.Background(), "AK", key) }()
	time.Sleep(100 * time.Millisecond)
	unrelated := "UNRELATED"
	for i := 0; a.forgetsOf(unrelated) == a.forgetsOf("AK"); i++ {
		unrelated = fmt.Sprint("UNRELATED", i) // keys in one slot share less, by design
	}
	a.Forget(unrelated) // a change event about another access key
	<-done
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok == nil {
		t.Error("AK's token was not shared: an unrelated key's Forget landed during its exchange")
	}
	before := f.ec2Calls.Load()
	f.set(func(f *fakeKeystone) { f.ec2Delay = 0 })
	if _, err := b.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	if n := f.ec2Calls.Load() - before; n != 0 {
		t.Errorf("replica b made %d ec2tokens call(s) for AK; want 0 (replica a's token shared)", n)
	}
}
