package keystoneclient

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// validations returns a channel that gets the result of each token check
// c makes after a backend's 401.
func validations(c *Client) <-chan string {
	results := make(chan string, 8)
	c.cfg.Observe = func(op, result string, _ time.Duration) {
		if op == "validate" {
			results <- result
		}
	}
	return results
}

func wantValidation(t *testing.T, results <-chan string, want string) {
	t.Helper()
	select {
	case got := <-results:
		if got != want {
			t.Fatalf("the token check's result is %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no token check was made")
	}
}

// recheckClient is a client of a fake Keystone, with the results of its
// token checks.
func recheckClient(t *testing.T) (*fakeKeystone, *Client, <-chan string, *testClock) {
	f, srv := newFakeKeystone(t)
	clock := new(testClock)
	c := newTestClient(t, srv.URL, clock)
	return f, c, validations(c), clock
}

func identity(t *testing.T, c *Client) *Identity {
	t.Helper()
	id, err := c.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A token Keystone revoked before it expires (user disabled, role taken
// away) is dropped once a backend refuses it: the next request exchanges
// again instead of failing until the token's renewal.
func TestRevokedTokenDroppedAfterBackend401(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	old := identity(t, c)
	f.revokeUserTokens()
	if !c.BackendRejected("AK", old) {
		t.Fatal("BackendRejected started no check")
	}
	wantValidation(t, results, "rejected")
	if id := identity(t, c); id.Token() == old.Token() {
		t.Fatalf("the revoked token %s is still served", old.Token())
	}
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("%d ec2tokens calls, want 2 (one exchange after the drop)", n)
	}
}

// A backend may answer 401 for its own reasons: a token Keystone still
// accepts is kept, and the key is not checked again for RecheckHold.
func TestValidTokenKeptAfterBackend401(t *testing.T) {
	f, c, results, clock := recheckClient(t)
	id := identity(t, c)
	if !c.BackendRejected("AK", id) {
		t.Fatal("BackendRejected started no check")
	}
	wantValidation(t, results, "ok")
	if got := identity(t, c); got.Token() != id.Token() {
		t.Errorf("a valid token was replaced: %s, was %s", got.Token(), id.Token())
	}
	for range 100 {
		if c.BackendRejected("AK", id) {
			t.Fatal("a second 401 within RecheckHold started another check")
		}
	}
	clock.advance(RecheckHold)
	if !c.BackendRejected("AK", id) {
		t.Fatal("a 401 after RecheckHold started no check")
	}
	wantValidation(t, results, "ok")
	if n, v := f.ec2Calls.Load(), f.validateCalls.Load(); n != 1 || v != 2 {
		t.Errorf("%d ec2tokens calls and %d validations, want 1 and 2", n, v)
	}
}

// A check that finds the token it was asked about revoked leaves a newer
// token, obtained meanwhile, in place.
func TestRecheckLeavesANewerTokenAlone(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	old := identity(t, c)
	f.revokeUserTokens()
	c.Forget("AK")
	current := identity(t, c)
	c.BackendRejected("AK", old)
	wantValidation(t, results, "rejected")
	if got := identity(t, c); got.Token() != current.Token() {
		t.Errorf("the newer token %s was dropped for the old one; now %s", current.Token(), got.Token())
	}
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("%d ec2tokens calls, want 2", n)
	}
}

// Keystone's keys rotated past both the service token and the cached
// token (ceph issue 71359): the check gets a new service token, and the
// cached token is dropped.
func TestRecheckAfterKeyRotation(t *testing.T) {
	f, c, results, clock := recheckClient(t)
	old := identity(t, c)
	f.revokeServiceTokens()
	f.revokeUserTokens()
	clock.advance(time.Minute)
	c.BackendRejected("AK", old)
	wantValidation(t, results, "rejected")
	if id := identity(t, c); id.Token() == old.Token() {
		t.Fatal("the token from before the rotation is still served")
	}
	if n := f.authCalls.Load(); n != 2 {
		t.Errorf("%d service authentications, want 2", n)
	}
}

// When Keystone cannot say, the token is kept: a Keystone outage must not
// also cost the tokens that still work.
func TestRecheckKeepsTheTokenWhenKeystoneIsDown(t *testing.T) {
	_, srv := newFakeKeystone(t)
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	results := validations(c)
	id := identity(t, c)
	srv.Close()
	c.BackendRejected("AK", id)
	wantValidation(t, results, "error")
	if got, ok := c.CachedIdentity("AK"); !ok || got != id {
		t.Error("the token was dropped though Keystone could not be asked")
	}
}

// Replicas sharing tokens: the replica that finds the shared token revoked
// deletes it from the store (or it would read it back at once); a replica
// that finds its own copy revoked later leaves the new one there.
func TestRevokedSharedToken(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	a, b := newTestClient(t, srv.URL, &clock), newTestClient(t, srv.URL, &clock)
	a.cfg.Shared, b.cfg.Shared = shared, shared
	aResults, bResults := validations(a), validations(b)
	old := identity(t, a)
	if got := identity(t, b); got.Token() != old.Token() {
		t.Fatalf("b did not take a's shared token: %s, want %s", got.Token(), old.Token())
	}
	f.revokeUserTokens()

	a.BackendRejected("AK", old)
	wantValidation(t, aResults, "rejected")
	renewed := identity(t, a)
	if renewed.Token() == old.Token() {
		t.Fatal("a took the revoked token back from the shared store")
	}
	b.BackendRejected("AK", old)
	wantValidation(t, bResults, "rejected")
	if got := identity(t, b); got.Token() != renewed.Token() {
		t.Errorf("b got %s after its drop, want a's new shared token %s", got.Token(), renewed.Token())
	}
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("%d ec2tokens calls for two replicas, want 2", n)
	}
}

// The remembered checks are bounded; past the bound, expired ones go.
func TestRecheckHoldsBounded(t *testing.T) {
	var h holds
	now := time.Unix(1e9, 0)
	for i := range maxHeld {
		if _, fresh := h.take(strconv.Itoa(i), "token", now); !fresh {
			t.Fatalf("key %d refused below the bound", i)
		}
	}
	if chk, _ := h.take("one more", "token", now); chk != nil {
		t.Fatal("a key past the bound was held while every other hold is current")
	}
	if _, fresh := h.take("one more", "token", now.Add(RecheckHold)); !fresh {
		t.Fatal("expired holds were not forgotten to make room")
	}
	if len(h.keys) != 1 {
		t.Errorf("%d holds remembered after the sweep, want 1", len(h.keys))
	}
}

// pausingShared stops the first DeleteTokenIf after it is armed until
// released.
type pausingShared struct {
	*memShared
	armed            atomic.Bool
	reached, release chan struct{}
}

func (p *pausingShared) DeleteTokenIf(ctx context.Context, ak string, stale func([]byte) bool) (bool, error) {
	if p.armed.CompareAndSwap(true, false) {
		close(p.reached)
		<-p.release
	}
	return p.memShared.DeleteTokenIf(ctx, ak, stale)
}

// A request while a check deletes the revoked token from the shared store
// does not get it back from there: the shared copy goes before the local
// one (found by a review: dropped here first, the token was read back
// from the store and kept for its lifetime, and the key held).
func TestRecheckUnsharesBeforeItDrops(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	shared := &pausingShared{memShared: &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}},
		reached: make(chan struct{}), release: make(chan struct{})}
	c := newTestClient(t, srv.URL, &clock)
	c.cfg.Shared = shared
	results := validations(c)
	old := identity(t, c)
	f.revokeUserTokens()
	shared.armed.Store(true)
	c.BackendRejected("AK", old)
	<-shared.reached // the check is at the store
	if id := identity(t, c); id.Token() != old.Token() {
		t.Fatalf("the token was dropped here before the shared copy (%s served)", id.Token())
	}
	close(shared.release)
	wantValidation(t, results, "rejected")
	if id := identity(t, c); id.Token() == old.Token() {
		t.Error("the revoked token is served again after the check")
	}
}

// Keystone refusing the check itself (the service account lacks a role:
// 403) says nothing about the token: kept, and checked again soon rather
// than after RecheckHold.
func TestRecheckRefusedKeepsTheToken(t *testing.T) {
	f, c, results, clock := recheckClient(t)
	id := identity(t, c)
	f.revokeUserTokens()
	f.set(func(f *fakeKeystone) { f.validateStatus = http.StatusForbidden })
	c.BackendRejected("AK", id)
	wantValidation(t, results, "error")
	if got, ok := c.CachedIdentity("AK"); !ok || got != id {
		t.Fatal("a token was dropped on a 403 to the check")
	}
	if c.BackendRejected("AK", id) {
		t.Error("checked again at once after a failed check")
	}
	clock.advance(recheckRetry)
	if !c.BackendRejected("AK", id) {
		t.Errorf("not checked again %v after a failed check", recheckRetry)
	}
	wantValidation(t, results, "error")
}

// At most maxRechecks checks run at once; a 401 that finds none free
// starts none and leaves the key free for the next 401.
func TestRechecksBounded(t *testing.T) {
	_, c, results, _ := recheckClient(t)
	id := identity(t, c)
	for range maxRechecks {
		c.rechecks <- struct{}{} // checks of other keys under way
	}
	if c.BackendRejected("AK", id) {
		t.Fatal("a check started with every slot taken")
	}
	<-c.rechecks
	if !c.BackendRejected("AK", id) {
		t.Fatal("the key stayed held after a 401 that started no check")
	}
	wantValidation(t, results, "ok")
}

// A caller that can send the request again (Replaced) waits for the
// check: a revoked token is replaced before it answers, and every request
// the backend refused meanwhile, or later, with the same token is told so
// after one validation.
func TestReplacedWaitsForOneCheck(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	old := identity(t, c)
	f.revokeUserTokens()
	gate := make(chan struct{})
	f.set(func(f *fakeKeystone) { f.validateGate = gate })
	const callers = 8
	answers := make(chan bool, callers)
	for range callers {
		go func() { answers <- c.Replaced(context.Background(), "AK", old) }()
	}
	select {
	case <-answers:
		t.Fatal("Replaced answered before Keystone did")
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	for range callers {
		if !<-answers {
			t.Fatal("Replaced = false for a revoked token")
		}
	}
	wantValidation(t, results, "rejected")
	if id := identity(t, c); id.Token() == old.Token() {
		t.Fatal("the revoked token is still served")
	}
	wantValidation(t, results, "ok") // the new token, exchanged right after the revocation
	if !c.Replaced(context.Background(), "AK", old) {
		t.Error("a late 401 with the revoked token: Replaced = false")
	}
	if v, n := f.validateCalls.Load(), f.ec2Calls.Load(); v != 2 || n != 2 {
		t.Errorf("%d validations and %d ec2tokens calls, want 2 (the check, the new token) and 2", v, n)
	}
}

// A token Keystone still accepts is not replaced; the key is then held:
// the next 401s are answered at once, without asking Keystone.
func TestReplacedKeepsAValidToken(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	id := identity(t, c)
	for range 3 {
		if c.Replaced(context.Background(), "AK", id) {
			t.Fatal("Replaced = true for a valid token")
		}
	}
	wantValidation(t, results, "ok")
	if got := identity(t, c); got.Token() != id.Token() {
		t.Errorf("a valid token was replaced: %s, was %s", got.Token(), id.Token())
	}
	if v := f.validateCalls.Load(); v != 1 {
		t.Errorf("%d validations, want 1", v)
	}
}

// The token that replaced a revoked one may be revoked in turn within
// RecheckHold (a password change, then a role taken away): it is checked
// too, not held back by the first check.
func TestReplacedTwiceWithinTheHold(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	first := identity(t, c)
	f.revokeUserTokens()
	if !c.Replaced(context.Background(), "AK", first) {
		t.Fatal("the first revoked token was not replaced")
	}
	wantValidation(t, results, "rejected")
	second := identity(t, c)
	wantValidation(t, results, "ok")
	f.revokeUserTokens()
	if !c.Replaced(context.Background(), "AK", second) {
		t.Fatal("the second revoked token was not replaced")
	}
	wantValidation(t, results, "rejected")
	if third := identity(t, c); third.Token() == second.Token() || third.Token() == first.Token() {
		t.Fatal("a revoked token is still served")
	}
}

// Keystone unreachable: nothing is replaced, and the wait ends.
func TestReplacedWhenKeystoneIsDown(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	id := identity(t, c)
	f.set(func(f *fakeKeystone) { f.validateStatus = http.StatusServiceUnavailable })
	if c.Replaced(context.Background(), "AK", id) {
		t.Fatal("Replaced = true without an answer from Keystone")
	}
	wantValidation(t, results, "error")
	if got, ok := c.CachedIdentity("AK"); !ok || got != id {
		t.Fatal("the token was dropped without an answer from Keystone")
	}
}

// Keystone revokes every token issued up to the second of a revocation
// event: the exchange right after a password change got a token revoked
// already, and the request sent again with it failed too (measured with
// Keystone 22). Right after a check dropped a token, the new token is
// validated, and exchanged again a second later if it is revoked.
func TestExchangeRightAfterARevocation(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	old := identity(t, c)
	f.revokeUserTokens()
	f.set(func(f *fakeKeystone) { f.revokeNext = 1 })
	if !c.Replaced(context.Background(), "AK", old) {
		t.Fatal("the revoked token was not replaced")
	}
	wantValidation(t, results, "rejected")
	start := time.Now()
	id := identity(t, c)
	wantValidation(t, results, "rejected") // the token issued in the revocation's second
	if took := time.Since(start); took < revocationGrain {
		t.Errorf("exchanged again after %v, want %v", took, revocationGrain)
	}
	f.mu.Lock()
	valid := f.users[id.Token()]
	f.mu.Unlock()
	if !valid {
		t.Fatalf("the token served, %s, is revoked", id.Token())
	}
	if n := f.ec2Calls.Load(); n != 3 {
		t.Errorf("%d ec2tokens calls, want 3 (the first, the revoked one, the one after a second)", n)
	}
}

// A token renewed meanwhile is not a reason to send a request again: the
// backend may have refused the old one for another reason, after it
// acted. Only Keystone saying the old token is revoked is (found by a
// review: a shortcut said yes without asking).
func TestReplacedAsksKeystoneEvenAfterARenewal(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	first := identity(t, c)
	c.tokens.Invalidate("AK") // as a renewal does
	if second := identity(t, c); second.Token() == first.Token() {
		t.Fatal("no new token after the invalidation")
	}
	if c.Replaced(context.Background(), "AK", first) {
		t.Error("Replaced = true for a token Keystone still accepts")
	}
	wantValidation(t, results, "ok")
	if v := f.validateCalls.Load(); v != 1 {
		t.Errorf("%d validations, want 1", v)
	}
}

// Right after a drop, a token from the shared store may be revoked
// already too: another replica got it in the revocation's second, or
// shared it after. It is validated, deleted from the store if revoked,
// and a new one exchanged (found by a review).
func TestSharedTokenRevokedAlready(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	a, b := newTestClient(t, srv.URL, &clock), newTestClient(t, srv.URL, &clock)
	a.cfg.Shared, b.cfg.Shared = shared, shared
	bResults := validations(b)
	old := identity(t, a)
	if got := identity(t, b); got.Token() != old.Token() {
		t.Fatalf("b did not take a's shared token")
	}
	f.revokeUserTokens()
	f.set(func(f *fakeKeystone) { f.revokeNext = 1 })
	if !b.Replaced(context.Background(), "AK", old) {
		t.Fatal("b did not drop the revoked token")
	}
	wantValidation(t, bResults, "rejected")
	// a renews, unaware of the revocation: it gets a token revoked in
	// the same second, and shares it.
	a.tokens.Invalidate("AK")
	stale := identity(t, a)
	fresh := identity(t, b)
	wantValidation(t, bResults, "rejected") // the shared one
	wantValidation(t, bResults, "ok")       // the one b exchanged then
	f.mu.Lock()
	valid := f.users[fresh.Token()]
	f.mu.Unlock()
	if fresh.Token() == stale.Token() || !valid {
		t.Fatalf("b serves %s, revoked already (a shared %s)", fresh.Token(), stale.Token())
	}
	if n := f.ec2Calls.Load(); n != 3 {
		t.Errorf("%d ec2tokens calls, want 3", n)
	}
}

// A token renewed before the revocation, cached when the drop came, is
// revoked too: the request must not be sent again with it. It is checked
// as well, and requests refused with the first token later still learn
// it was dropped (found by a review).
func TestReplacedChecksATokenRenewedBeforeTheRevocation(t *testing.T) {
	f, c, results, _ := recheckClient(t)
	first := identity(t, c)
	c.tokens.Invalidate("AK") // a renewal
	second := identity(t, c)
	f.revokeUserTokens() // both
	if !c.Replaced(context.Background(), "AK", first) {
		t.Fatal("the revoked token was not replaced")
	}
	wantValidation(t, results, "rejected") // first
	wantValidation(t, results, "rejected") // second, left by the drop
	third := identity(t, c)
	f.mu.Lock()
	valid := f.users[third.Token()]
	f.mu.Unlock()
	if third.Token() == second.Token() || !valid {
		t.Fatalf("the request would go again with %s, revoked", third.Token())
	}
	wantValidation(t, results, "ok") // third, exchanged right after
	if !c.Replaced(context.Background(), "AK", first) {
		t.Error("a late refusal of the first token: Replaced = false")
	}
	if v := f.validateCalls.Load(); v != 3 {
		t.Errorf("%d validations, want 3", v)
	}
}

// The exchange again a second after a same-second revocation has a budget
// of its own: within the load's (2 x keystone.timeout), two slow exchanges
// and the second's wait did not fit, and the key failed (found by a
// review).
func TestExchangeAfterARevocationHasItsOwnBudget(t *testing.T) {
	f, c, results, _ := recheckClient(t) // keystone.timeout 1 s
	old := identity(t, c)
	f.revokeUserTokens()
	if !c.Replaced(context.Background(), "AK", old) {
		t.Fatal("the revoked token was not replaced")
	}
	wantValidation(t, results, "rejected")
	f.set(func(f *fakeKeystone) { f.revokeNext, f.ec2Delay = 1, 700*time.Millisecond })
	id, err := c.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatalf("Identity: %v; want a token after a second exchange", err)
	}
	f.mu.Lock()
	valid := f.users[id.Token()]
	f.mu.Unlock()
	if !valid {
		t.Errorf("the token served, %s, is revoked", id.Token())
	}
}

// The validation of a shared token right after a drop, and the exchange
// that follows if it is revoked, have a budget of their own: with a slow
// Keystone they did not fit in the load's, 2 x keystone.timeout (found
// by a review).
func TestSharedTokenCheckHasItsOwnBudget(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	a, b := newTestClient(t, srv.URL, &clock), newTestClient(t, srv.URL, &clock) // keystone.timeout 1 s
	a.cfg.Shared, b.cfg.Shared = shared, shared
	old := identity(t, a)
	identity(t, b)
	f.revokeUserTokens()
	f.set(func(f *fakeKeystone) { f.revokeNext = 1 })
	if !b.Replaced(context.Background(), "AK", old) {
		t.Fatal("b did not drop the revoked token")
	}
	a.tokens.Invalidate("AK")
	identity(t, a) // shares a token revoked in the same second
	// A service token to renew, then a validation and an exchange: 2.4 s,
	// past the load's 2 s.
	b.svc.Store(nil)
	f.set(func(f *fakeKeystone) {
		f.authDelay, f.validateDelay, f.ec2Delay = 800*time.Millisecond, 800*time.Millisecond, 800*time.Millisecond
	})
	id, err := b.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatalf("Identity: %v; want a new token after the shared one was found revoked", err)
	}
	f.mu.Lock()
	valid := f.users[id.Token()]
	f.mu.Unlock()
	if !valid {
		t.Errorf("b serves %s, revoked", id.Token())
	}
}
