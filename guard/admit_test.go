package guard

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Two replicas over one real Redis with replay protection and the fleet
// rate limit: one script decides both, markers and buckets are shared, and
// a replay spends no token.
func TestSharedAdmission(t *testing.T) {
	client, prefix := testRedis(t, "admit")
	newReplica := func() *SharedAdmission {
		r := NewRedis(client, prefix)
		return r.NewAdmission(r.NewRateLimit(0.5, 3, 100)) // one request per 2 s, bursts of 3
	}
	a, b := newReplica(), newReplica()
	ctx := context.Background()
	admit := func(s *SharedAdmission, key, sig string) Admission {
		t.Helper()
		v, err := s.Admit(ctx, []byte(key), sig, time.Minute)
		if err != nil {
			t.Fatalf("Admit(%s, %s): %v", key, sig, err)
		}
		return v
	}
	steps := []struct {
		replica *SharedAdmission
		key     string
		sig     string
		want    Admission
	}{
		{a, "AK", "s1", Admitted},
		{b, "AK", "s1", Replayed}, // the other replica sees the marker
		{a, "AK", "s1", Replayed},
		{b, "AK", "s2", Admitted}, // the replays spent nothing: s1, s2, s3 are the burst
		{a, "AK", "s3", Admitted},
		{b, "AK", "s4", Limited},
		{a, "AK", "s4", Limited},     // a limited request was not used: its retry is limited again, not a replay
		{a, "OTHER", "s1", Admitted}, // per access key, markers as buckets
	}
	for i, s := range steps {
		if got := admit(s.replica, s.key, s.sig); got != s.want {
			t.Errorf("step %d (%s %s): %v, want %v", i, s.key, s.sig, got, s.want)
		}
	}
	if ttl := client.PTTL(ctx, prefix+"seen:{AK}:s1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("replay marker TTL %v, want ≤ 1m", ttl)
	}
	if ttl := client.PTTL(ctx, prefix+"rate:{AK}").Val(); ttl <= 0 || ttl > 7*time.Second {
		t.Errorf("bucket TTL %v, want ≤ burst × interval (6 s)", ttl)
	}
	// The same keys as FirstUse and Take use on their own: switching
	// between one command and two keeps every marker and bucket.
	r := NewRedis(client, prefix)
	if first, err := r.FirstUse(ctx, []byte("AK"), "s2", time.Minute); first || err != nil {
		t.Errorf("FirstUse of a signature Admit recorded: first=%v err=%v", first, err)
	}
	if ok, err := r.NewRateLimit(0.5, 3, 100).Take(ctx, []byte("AK"), time.Now()); ok || err != nil {
		t.Errorf("Take on the bucket Admit emptied: allowed=%v err=%v", ok, err)
	}

	// Redis gone: an error, never an admission (the proxy fails closed).
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	d := NewRedis(down, prefix)
	if _, err := d.NewAdmission(d.NewRateLimit(1, 1, 100)).Admit(ctx, []byte("AK"), "s9", time.Minute); err == nil {
		t.Error("Admit with Redis down: no error")
	}
}
