package guard

import (
	"context"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func TestLockoutLocal(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: 5 * time.Minute}, nil)
	ctx := context.Background()
	for i := 0; i < 5; i++ { // the same failed request retried: counts once
		if _, locked, _ := l.Failed(ctx, "AK", "same", t0); locked {
			t.Fatal("identical retries locked the key")
		}
	}
	l.Failed(ctx, "AK", "b", t0.Add(time.Second))
	if _, locked := l.Locked([]byte("AK"), t0.Add(2*time.Second)); locked {
		t.Fatal("locked after 2 distinct failures; max is 3")
	}
	until, locked, _ := l.Failed(ctx, "AK", "c", t0.Add(2*time.Second))
	if !locked || !until.Equal(t0.Add(2*time.Second+5*time.Minute)) {
		t.Fatalf("third failure: locked=%v until %v", locked, until)
	}
	if _, locked := l.Locked([]byte("AK"), t0.Add(4*time.Minute)); !locked {
		t.Error("lock lifted early")
	}
	if _, locked := l.Locked([]byte("AK"), t0.Add(6*time.Minute)); locked {
		t.Error("lock not lifted after its duration")
	}
	if _, locked := l.Locked([]byte("OTHER"), t0); locked {
		t.Error("an untouched key is locked")
	}
	// Failures spread over more than the window do not add up.
	l2 := NewLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute}, nil)
	for i := 0; i < 6; i++ {
		if _, locked, _ := l2.Failed(ctx, "AK", fmt.Sprint(i), t0.Add(time.Duration(i)*40*time.Second)); locked {
			t.Fatalf("failure %d locked; they are 40 s apart with a 1 min window", i)
		}
	}
}

func TestLockoutBounded(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute, MaxTracked: 100}, nil)
	for i := 0; i < 1000; i++ {
		l.Failed(context.Background(), fmt.Sprint("k", i), "x", t0)
	}
	if n := len(l.keys); n > 100 {
		t.Errorf("%d keys tracked; bound is 100", n)
	}
}

// sharedFake is another replica's view, in memory.
type sharedFake struct {
	fails map[string]map[string]bool
	locks map[string]time.Time
	calls int
}

func (s *sharedFake) AddFailure(_ context.Context, key, fp string, _ time.Duration) (int, time.Time, error) {
	s.calls++
	if s.fails[key] == nil {
		s.fails[key] = map[string]bool{}
	}
	s.fails[key][fp] = true
	return len(s.fails[key]), s.locks[key], nil
}

func (s *sharedFake) Lock(_ context.Context, key string, until time.Time) error {
	s.locks[key] = until
	return nil
}

func TestLockoutShared(t *testing.T) {
	shared := &sharedFake{fails: map[string]map[string]bool{}, locks: map[string]time.Time{}}
	cfg := LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute}
	a, b := NewLockout(cfg, shared), NewLockout(cfg, shared)
	ctx := context.Background()
	a.Failed(ctx, "AK", "1", t0)
	b.Failed(ctx, "AK", "2", t0)
	if _, locked, _ := a.Failed(ctx, "AK", "3", t0); !locked {
		t.Fatal("three failures across two replicas did not lock")
	}
	// b learns of the lock at its next failure, without a local count of 3.
	if _, locked, _ := b.Failed(ctx, "AK", "4", t0); !locked {
		t.Error("replica b did not pick up the shared lock")
	}
	calls := shared.calls
	for i := 0; i < 100; i++ {
		a.Failed(ctx, "AK", fmt.Sprint("flood", i), t0)
	}
	if shared.calls != calls {
		t.Errorf("a locked key still cost %d shared calls", shared.calls-calls)
	}
}

func TestRateLimit(t *testing.T) {
	r := NewRateLimit(2, 3, 1000) // 2/s, burst 3
	key := []byte("AK")
	for i := 0; i < 3; i++ {
		if !r.Allow(key, t0) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if r.Allow(key, t0) {
		t.Error("4th request at once allowed; burst is 3")
	}
	if !r.Allow(key, t0.Add(500*time.Millisecond)) || r.Allow(key, t0.Add(500*time.Millisecond)) {
		t.Error("after 0.5 s exactly one token should be back")
	}
	if !r.Allow([]byte("OTHER"), t0) {
		t.Error("keys share a bucket")
	}
	if !NewRateLimit(0, 0, 0).Allow(key, t0) {
		t.Error("a disabled limiter refused")
	}
}

func TestSeen(t *testing.T) {
	s := NewSeen(2)
	now := t0
	s.now = func() time.Time { return now }
	ctx := context.Background()
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); !first {
		t.Fatal("first use refused")
	}
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); first {
		t.Error("replay accepted")
	}
	now = now.Add(2 * time.Minute)
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); !first {
		t.Error("expired marker still refuses")
	}
	s.FirstUse(ctx, ak, "b", time.Minute)
	s.FirstUse(ctx, ak, "c", time.Minute)
	if len(s.expires) > 2 {
		t.Errorf("%d markers; bound is 2", len(s.expires))
	}
}

func TestLearnedLock(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute}, nil)
	now := time.Now()
	l.Learn("AK", now.Add(time.Minute), now)
	if _, locked := l.Locked([]byte("AK"), now.Add(30*time.Second)); !locked {
		t.Error("a learned lock is not applied")
	}
	if _, locked := l.Locked([]byte("AK"), now.Add(61*time.Second)); locked {
		t.Error("a learned lock outlives its end")
	}
	l.Learn("OLD", now.Add(-time.Second), now)
	if _, locked := l.Locked([]byte("OLD"), now); locked {
		t.Error("a lock already over was applied")
	}
	key, until, ok := ParseLockEvent("lock 1764064800000 client:10.0.0.1")
	if !ok || key != "client:10.0.0.1" || until.UnixMilli() != 1764064800000 {
		t.Errorf("ParseLockEvent = %q %v %v", key, until, ok)
	}
	for _, bad := range []string{"cred AK", "lock x AK", "lock 123", "lock 123 "} {
		if _, _, ok := ParseLockEvent(bad); ok {
			t.Errorf("ParseLockEvent(%q) accepted", bad)
		}
	}
}

func TestLockoutFailedLocally(t *testing.T) {
	cfg := LockoutConfig{MaxFailures: 2, Window: time.Minute, Duration: time.Minute}
	// Without a shared store every failure is local: FailedLocally is Failed.
	local := NewLockout(cfg, nil)
	if _, locked, ok := local.FailedLocally("AK", "1", t0); !ok || locked {
		t.Fatalf("first local failure: ok=%v locked=%v", ok, locked)
	}
	if _, locked, ok := local.FailedLocally("AK", "2", t0); !ok || !locked {
		t.Fatalf("second distinct local failure: ok=%v locked=%v, want a lock", ok, locked)
	}

	shared := &sharedFake{fails: map[string]map[string]bool{}, locks: map[string]time.Time{}}
	l := NewLockout(cfg, shared)
	ctx := context.Background()
	if _, _, ok := l.FailedLocally("AK", "1", t0); ok {
		t.Fatal("a new failure was answered without the shared store")
	}
	if shared.calls != 0 {
		t.Fatalf("FailedLocally called the shared store %d times", shared.calls)
	}
	// It recorded nothing: Failed still counts the same failure, with Redis.
	l.Failed(ctx, "AK", "1", t0)
	if shared.calls != 1 {
		t.Fatalf("Failed after FailedLocally: %d shared calls, want 1", shared.calls)
	}
	if _, locked, ok := l.FailedLocally("AK", "1", t0.Add(time.Second)); !ok || locked {
		t.Fatalf("a repeated failure: ok=%v locked=%v, want answered locally, unlocked", ok, locked)
	}
	if _, _, ok := l.FailedLocally("AK", "2", t0.Add(time.Second)); ok {
		t.Fatal("a second distinct failure was answered without the shared store")
	}
	if _, locked, _ := l.Failed(ctx, "AK", "2", t0.Add(time.Second)); !locked {
		t.Fatal("two distinct failures did not lock")
	}
	calls := shared.calls
	until, locked, ok := l.FailedLocally("AK", "3", t0.Add(2*time.Second))
	if !ok || !locked || !until.Equal(t0.Add(time.Second+time.Minute)) {
		t.Fatalf("a locked key's failure: ok=%v locked=%v until %v", ok, locked, until)
	}
	// After the window and the lock, a failure is new again.
	if _, _, ok := l.FailedLocally("AK", "1", t0.Add(3*time.Minute)); ok {
		t.Fatal("a failure after the window was answered from expired state")
	}
	if shared.calls != calls {
		t.Errorf("FailedLocally made %d shared calls", shared.calls-calls)
	}
}

// A table full of live entries makes room by forgetting the one whose
// window ends soonest, never a lock: an attacker filling it (failures for
// unknown keys count per client address) must not lift one.
func TestLockoutFullKeepsLocks(t *testing.T) {
	l := NewLockout(LockoutConfig{MaxFailures: 2, Window: time.Minute, Duration: time.Hour, MaxTracked: 10}, nil)
	ctx := context.Background()
	l.Failed(ctx, "victim", "a", t0)
	if _, locked, _ := l.Failed(ctx, "victim", "b", t0); !locked {
		t.Fatal("two failures did not lock")
	}
	for i := range 100 { // fill and churn, within the victim's lock
		l.Failed(ctx, fmt.Sprint("client:", i), "x", t0.Add(time.Duration(i)*time.Second))
	}
	if _, locked := l.Locked([]byte("victim"), t0.Add(2*time.Minute)); !locked {
		t.Error("a lock was evicted to make room")
	}
	if n := len(l.keys); n > 10 {
		t.Errorf("%d keys tracked; bound is 10", n)
	}
	// The newest failures are tracked: the soonest-ending entries made room.
	if _, ok := l.keys["client:99"]; !ok {
		t.Error("the newest key is not tracked")
	}
}

// BenchmarkLockoutFailedFull is a failure for a new key once the table
// holds MaxTracked live entries; it scanned the whole table: 3 ms a call.
func BenchmarkLockoutFailedFull(b *testing.B) {
	l := NewLockout(LockoutConfig{MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute}, nil)
	ctx := context.Background()
	for i := range 100_000 {
		l.Failed(ctx, fmt.Sprint("client:", i), "x", t0)
	}
	i := 0
	for b.Loop() {
		i++
		l.Failed(ctx, fmt.Sprint("new:", i), "x", t0)
	}
}
