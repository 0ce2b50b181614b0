package guard

import (
	"context"
	"testing"
	"time"
)

// A released marker lets the same signature through once more: the proxy
// releases the marker of a request refused before the backend saw it with
// an answer that asks for a retry, and botocore's retry within the same
// second carries the same signature (SigV2's Timestamp and SigV4's
// X-Amz-Date have one-second resolution).
func TestSeenRelease(t *testing.T) {
	s := NewSeen(10)
	now := t0
	s.now = func() time.Time { return now }
	ctx := context.Background()
	s.FirstUse(ctx, ak, "a", time.Minute)
	s.FirstUse(ctx, ak, "b", time.Minute)
	if err := s.Release(ctx, ak, "a"); err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); !first {
		t.Error("a released marker still refuses its signature")
	}
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); first {
		t.Error("the signature's new marker does not refuse it")
	}
	if first, _ := s.FirstUse(ctx, ak, "b", time.Minute); first {
		t.Error("releasing one marker released another")
	}
	if err := s.Release(ctx, ak, "never set"); err != nil {
		t.Errorf("releasing an absent marker: %v", err)
	}
	// The queue item of the released marker is stale: it must not delete
	// the marker set again after it.
	now = now.Add(2 * time.Minute)
	s.FirstUse(ctx, ak, "c", time.Minute)
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
		name     string
		firstUse func(sig string) (bool, error)
		release  func(ctx context.Context, accessKey []byte, sig string) error
	}{
		{"FirstUse", func(sig string) (bool, error) { return replay.FirstUse(ctx, ak, sig, time.Minute) }, replay.Release},
		{"Admit", func(sig string) (bool, error) {
			v, err := admission.Admit(ctx, ak, sig, time.Minute)
			return v == Admitted, err
		}, admission.Release},
	} {
		t.Run(c.name, func(t *testing.T) {
			first := func(sig string) bool {
				t.Helper()
				ok, err := c.firstUse(sig)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !first("a") || !first("b") {
				t.Fatal("new signatures refused")
			}
			if err := c.release(ctx, ak, "a"); err != nil {
				t.Fatal(err)
			}
			if !first("a") {
				t.Error("a released marker still refuses its signature")
			}
			if first("a") {
				t.Error("the signature's new marker does not refuse it")
			}
			if first("b") {
				t.Error("releasing one marker released another")
			}
		})
	}
}
