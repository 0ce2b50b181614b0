package guard

import (
	"context"
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
	nonce, first, err := slow.Mark(ctx, ak, "S", time.Minute)
	if !first || err != nil {
		t.Fatalf("first use: %v %v", first, err)
	}
	p.armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- slow.Release(ctx, ak, "S", nonce) }()
	for i := 0; i < 40; i++ { // the first try has run; its answer is held
		if v, _ := direct.Get(ctx, seenKey(prefix, ak, "S")).Result(); v == freeMarker {
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
