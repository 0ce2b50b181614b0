package guard

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A released marker lets the same signature through once more, within
// ReuseWindow of its first use: the proxy releases the marker of a request
// refused before the backend saw it with an answer that asks for a retry,
// and botocore's retry within the same second carries the same signature.
// Later the same bytes are a copy, and a replay again.
func TestSeenRelease(t *testing.T) {
	s := NewSeen(10)
	now := t0
	s.SetClock(func() time.Time { return now })
	ctx := context.Background()
	first := func(sig string) bool {
		t.Helper()
		ok, err := s.FirstUse(ctx, ak, sig, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	first("a")
	first("b")
	now = now.Add(time.Second)
	if err := s.Release(ctx, ak, "a", ""); err != nil {
		t.Fatal(err)
	}
	if !first("a") {
		t.Error("a released marker still refuses its signature within the reuse window")
	}
	if first("a") {
		t.Error("the signature, used again, does not refuse a third use")
	}
	if first("b") {
		t.Error("releasing one marker released another")
	}
	if err := s.Release(ctx, ak, "never set", ""); err != nil {
		t.Errorf("releasing an absent marker: %v", err)
	}
	// Past the window the same bytes are a copy.
	_ = s.Release(ctx, ak, "b", "")
	now = now.Add(ReuseWindow)
	if first("b") {
		t.Error("a released marker let its signature through after the reuse window")
	}
	// The released marker keeps its expiry: it leaves with the others.
	now = now.Add(2 * time.Minute)
	first("c")
	if len(s.expires) != 1 {
		t.Errorf("%d markers after all but one expired, want 1", len(s.expires))
	}
}

func TestRedisRelease(t *testing.T) {
	client, prefix := testRedis(t, "release")
	ctx := context.Background()
	replay := NewRedis(client, prefix+"replay:")
	shared := NewRedis(client, prefix+"admit:")
	admission := shared.NewAdmission(shared.NewRateLimit(1000, 1000, 100))
	for _, c := range []struct {
		name  string
		r     *Redis
		mark  func(sig string) (string, bool, error)
		relse func(ctx context.Context, accessKey []byte, sig, nonce string) error
	}{
		{"Mark", replay, func(sig string) (string, bool, error) { return replay.Mark(ctx, ak, sig, time.Minute) }, replay.Release},
		{"AdmitMarked", shared, func(sig string) (string, bool, error) {
			v, nonce, err := admission.AdmitMarked(ctx, ak, sig, time.Minute)
			return nonce, v == Admitted, err
		}, admission.Release},
	} {
		t.Run(c.name, func(t *testing.T) {
			mark := func(sig string) (string, bool) {
				t.Helper()
				nonce, ok, err := c.mark(sig)
				if err != nil {
					t.Fatal(err)
				}
				return nonce, ok
			}
			na, okA := mark("a")
			_, okB := mark("b")
			if !okA || !okB || na == "" {
				t.Fatalf("new signatures: %v %v, nonce %q", okA, okB, na)
			}
			if err := c.relse(ctx, ak, "a", "not the nonce"); err != nil {
				t.Fatal(err)
			}
			if _, ok := mark("a"); ok {
				t.Error("a release with another call's nonce freed the marker")
			}
			if err := c.relse(ctx, ak, "a", na); err != nil {
				t.Fatal(err)
			}
			na2, ok := mark("a")
			if !ok {
				t.Error("a released marker still refuses its signature within the reuse window")
			}
			if _, ok := mark("a"); ok {
				t.Error("the signature, used again, does not refuse a third use")
			}
			if _, ok := mark("b"); ok {
				t.Error("releasing one marker released another")
			}
			if ttl := client.PTTL(ctx, c.r.prefix+"seen:{"+string(ak)+"}:a").Val(); ttl <= 50*time.Second {
				t.Errorf("the marker taken again has %v left; it keeps its first TTL (1m)", ttl)
			}
			// Past the window the same bytes are a copy.
			c.r.reuse = 100 * time.Millisecond
			defer func() { c.r.reuse = ReuseWindow }()
			if err := c.relse(ctx, ak, "a", na2); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			if _, ok := mark("a"); ok {
				t.Error("a released marker let its signature through after the reuse window")
			}
		})
	}
}

// A Release whose answer is late is sent again by go-redis; by then the
// client's retry may have taken the freed marker. The second try must not
// free that one too (found by a review: a plain DEL did, and a third copy
// of the signature was admitted).
func TestSlowRedisLateReleaseKeepsTheRetrysMarker(t *testing.T) {
	direct, prefix := testRedis(t, "late-release")
	p := startSlowOnce(t, 800*time.Millisecond)
	slow := NewRedis(p.client(t), prefix) // replica A, its Redis answer late
	other := NewRedis(direct, prefix)     // replica B
	ctx := context.Background()
	// Redis has the scripts, as a running proxy's has: without them the
	// held answer is NOSCRIPT, and the release runs only after it (this
	// failed when run alone after a test that flushes the scripts).
	if warm, _, err := slow.Mark(ctx, ak, "warm-up", time.Minute); err != nil || slow.Release(ctx, ak, "warm-up", warm) != nil {
		t.Fatalf("warm-up: %v", err)
	}
	nonce, first, err := slow.Mark(ctx, ak, "S", time.Minute)
	if !first || err != nil {
		t.Fatalf("first use: %v %v", first, err)
	}
	p.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- slow.Release(ctx, ak, "S", nonce) }()
	for i := 0; i < 40; i++ { // the first try has run; its answer is held
		if v, _ := direct.Get(ctx, seenKey(prefix, ak, "S")).Result(); strings.HasPrefix(v, freeMarker+"/") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if first, err := other.FirstUse(ctx, ak, "S", time.Minute); !first || err != nil {
		t.Fatalf("the retry after the release: %v %v", first, err)
	}
	if err := <-done; err != nil {
		t.Logf("Release: %v", err)
	}
	if first, _ := other.FirstUse(ctx, ak, "S", time.Minute); first {
		t.Error("the late Release freed the marker of the served retry: a third copy of the signature is admitted")
	}
}

// A released marker's age is counted from the TTL it was set with, not the
// asking replica's: in a rolling change of auth.timestamp_window replicas
// compute different TTLs for one signature (found by a review: one with a
// shorter TTL read the marker as younger, and let a copy through minutes
// after the first use).
func TestReleasedMarkerAgeIsItsOwn(t *testing.T) {
	client, prefix := testRedis(t, "own-ttl")
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		claim func(b *Redis, sig string) bool
	}{
		{"Mark", func(b *Redis, sig string) bool {
			_, ok, err := b.Mark(ctx, ak, sig, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}},
		{"AdmitMarked", func(b *Redis, sig string) bool {
			v, _, err := b.NewAdmission(b.NewRateLimit(1000, 1000, 100)).AdmitMarked(ctx, ak, sig, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return v == Admitted
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := NewRedis(client, prefix) // marker TTL 60 s
			b := NewRedis(client, prefix) // marker TTL 30 s
			a.reuse, b.reuse = 100*time.Millisecond, 100*time.Millisecond
			sig := "sig-" + c.name
			nonce, first, err := a.Mark(ctx, ak, sig, time.Minute)
			if !first || err != nil {
				t.Fatalf("first use: %v %v", first, err)
			}
			if err := a.Release(ctx, ak, sig, nonce); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if c.claim(b, sig) {
				t.Error("replica b took a released marker 300 ms after its first use; the reuse window is 100 ms")
			}
		})
	}
}

// With the fleet rate limit the admission script frees a limited
// request's marker; a copy after the window is a replay.
func TestAdmitLimitedCopyAfterTheWindowIsAReplay(t *testing.T) {
	client, prefix := testRedis(t, "admit-window")
	ctx := context.Background()
	r := NewRedis(client, prefix)
	r.reuse = 100 * time.Millisecond
	adm := r.NewAdmission(r.NewRateLimit(5, 1, 100)) // a token every 200 ms
	if v, _, err := adm.AdmitMarked(ctx, ak, "spend", time.Minute); v != Admitted || err != nil {
		t.Fatalf("spending the token: %v %v", v, err)
	}
	if v, _, err := adm.AdmitMarked(ctx, ak, "L", time.Minute); v != Limited || err != nil {
		t.Fatalf("the limited request: %v %v", v, err)
	}
	if v, _, err := adm.AdmitMarked(ctx, ak, "L", time.Minute); v != Limited || err != nil {
		t.Fatalf("the limited request again, within the window: %v %v; want Limited", v, err)
	}
	time.Sleep(400 * time.Millisecond) // a token is back; the window is over
	if v, _, err := adm.AdmitMarked(ctx, ak, "L", time.Minute); v != Replayed || err != nil {
		t.Errorf("a copy of the limited request after the reuse window: %v %v; want Replayed", v, err)
	}
}

// Taking a released marker does not restart its window: a request limited
// again and again is a replay once its first use is ReuseWindow old.
func TestReuseWindowRunsFromFirstUse(t *testing.T) {
	client, prefix := testRedis(t, "first-use")
	ctx := context.Background()
	r := NewRedis(client, prefix)
	r.reuse = 300 * time.Millisecond
	nonce, first, err := r.Mark(ctx, ak, "S", time.Minute)
	if !first || err != nil {
		t.Fatal(first, err)
	}
	_ = r.Release(ctx, ak, "S", nonce)
	time.Sleep(200 * time.Millisecond)
	nonce, first, err = r.Mark(ctx, ak, "S", time.Minute)
	if !first || err != nil {
		t.Fatalf("Redis: taken within the window: %v %v", first, err)
	}
	if ttl := client.PTTL(ctx, seenKey(prefix, ak, "S")).Val(); ttl > time.Minute-150*time.Millisecond {
		t.Errorf("Redis: the marker taken again has %v left: its TTL restarted", ttl)
	}
	_ = r.Release(ctx, ak, "S", nonce)
	time.Sleep(200 * time.Millisecond) // 400 ms after first use, 200 ms after it was taken
	if _, first, _ := r.Mark(ctx, ak, "S", time.Minute); first {
		t.Error("Redis: taking the marker restarted the reuse window")
	}

	s := NewSeen(10)
	now := t0
	s.SetClock(func() time.Time { return now })
	s.Mark(ctx, ak, "S", time.Minute)
	_ = s.Release(ctx, ak, "S", "")
	now = now.Add(ReuseWindow - time.Millisecond)
	if _, first, _ := s.Mark(ctx, ak, "S", time.Minute); !first {
		t.Fatal("Seen: taken within the window: refused")
	}
	_ = s.Release(ctx, ak, "S", "")
	now = now.Add(time.Second)
	if _, first, _ := s.Mark(ctx, ak, "S", time.Minute); first {
		t.Error("Seen: taking the marker restarted the reuse window")
	}
}
