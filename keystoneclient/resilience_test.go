package keystoneclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Found by a review: with a token lifetime at or below TokenMargin (the "short token
// lifetimes" branch of loadIdentity), fresh = now + lifetime/2 and the
// flightcache adds StaleIfError = TokenMargin-1m on top: the stale window
// ends after the token has expired. While Keystone is down, an expired
// token is served (nil error).
func TestShortLivedTokenNotServedPastExpiry(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	f.now = clock.now
	f.tokenTTL = 4 * time.Minute // Keystone [token] expiration = 240 s; margin is 5 min
	c := newTestClient(t, srv.URL, &clock)
	id, err := c.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	expires := id.ExpiresAt()
	srv.Close() // Keystone goes down
	clock.advance(5 * time.Minute)
	got, err := c.Identity(context.Background(), "AK", key)
	if err == nil && !got.ExpiresAt().After(clock.now()) {
		t.Errorf("served a token that expired %v ago (expires_at %v) with no error", clock.now().Sub(expires), expires)
	}
}

// Found by a review: while Keystone hangs, a warm key whose token is past its renewal
// point is served stale only after each request has waited for a full
// Keystone timeout: failures are not remembered, so every request (one
// flight after another) pays it again.
func TestHangingKeystoneDelaysNoStaleHit(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	f.now = clock.now
	c := newTestClient(t, srv.URL, &clock) // Timeout 1s
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	clock.advance(56 * time.Minute) // inside the margin, but servable stale until 59m
	f.set(func(f *fakeKeystone) { f.ec2Delay = 3 * time.Second })
	for i := 0; i < 3; i++ {
		start := time.Now()
		_, err := c.Identity(context.Background(), "AK", key)
		d := time.Since(start)
		t.Logf("request %d: err=%v after %v", i, err, d)
		if err == nil && d > 500*time.Millisecond {
			t.Errorf("request %d: stale token served only after %v (Keystone timeout)", i, d)
		}
	}
}

// Found by a review: token freshness is judged by comparing Keystone's expires_at
// (Keystone's clock) with the proxy's clock. With Keystone's clock 10 min
// ahead, a token Keystone already considers expired is still served as
// fresh, with Keystone up, and no renewal is attempted.
func TestKeystoneClockAheadDoesNotServeExpiredTokens(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	skew := 10 * time.Minute
	f.now = func() time.Time { return clock.now().Add(skew) } // Keystone's clock
	c := newTestClient(t, srv.URL, &clock)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	clock.advance(62 * time.Minute) // Keystone: token expired 2 min ago
	id, err := c.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	if !id.ExpiresAt().After(f.now()) {
		t.Errorf("served token %q which expired %v ago by Keystone's clock; ec2tokens calls: %d",
			id.Token(), f.now().Sub(id.ExpiresAt()), f.ec2Calls.Load())
	}
}

// Found by a review: cache misses for different keys were not bounded: N
// cold keys at once made N concurrent ec2tokens calls (and N connections
// to Keystone).
func TestColdKeysBoundedConcurrency(t *testing.T) {
	f, srv := newFakeKeystone(t)
	f.ec2Delay = 200 * time.Millisecond
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	inflight, peak := 0, 0
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		inner.ServeHTTP(w, r)
		mu.Lock()
		inflight--
		mu.Unlock()
	})
	const n = 80
	for i := 0; i < n; i++ {
		f.secrets[fmt.Sprintf("AK%04d", i)] = "SECRET"
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := c.Identity(context.Background(), fmt.Sprintf("AK%04d", i), key); err != nil {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if peak > 16 || failed.Load() > 0 { // MaxConcurrent's default; 80 × 200 ms / 16 fits the 2 s load timeout
		t.Errorf("%d cold keys: peak %d concurrent ec2tokens calls, want at most 16; %d failed", n, peak, failed.Load())
	}
}

// Ready follows Keystone, not the service token it holds (found by a
// review: /readyz said ok for up to 55 minutes after Keystone went away).
func TestReadyFollowsKeystone(t *testing.T) {
	_, srv := newFakeKeystone(t)
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	if err := c.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with Keystone up: %v", err)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatalf("Ready again, with the token held: %v", err)
	}
	srv.Close()
	if err := c.Ready(context.Background()); err == nil {
		t.Error("Ready = nil with Keystone gone, a service token held")
	}
}

// Found by a review: a credential Keystone rejects with 401 (wrong secret,
// disabled user, no role on the project) made the client throw its service
// token away (when older than 10 s), authenticate with the password again
// and ask ec2tokens a second time, other exchanges waiting meanwhile. The
// service token is checked first now.
func TestRejectedCredentialKeepsTheServiceToken(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeKeystone) { f.secrets["AK2"] = "OTHER" })
	auth0, ec20 := f.authCalls.Load(), f.ec2Calls.Load()
	for i := 0; i < 5; i++ {
		clock.advance(11 * time.Second)
		if _, err := c.Identity(context.Background(), "AK2", key); !errors.Is(err, ErrRejected) {
			t.Fatal(err)
		}
	}
	if auth, ec2 := f.authCalls.Load()-auth0, f.ec2Calls.Load()-ec20; auth != 0 || ec2 != 5 {
		t.Errorf("5 rejections: %d service authentications, %d ec2tokens calls; want 0 and 5", auth, ec2)
	}
}
