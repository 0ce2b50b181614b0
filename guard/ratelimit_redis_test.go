package guard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Two replicas share one bucket per key: the burst is for the fleet, not
// per replica.
func TestSharedRateLimit(t *testing.T) {
	client, prefix := testRedis(t, "rate")
	a := NewSharedRateLimit(client, prefix, 0.5, 3, 100) // one request per 2 s, bursts of 3
	b := NewSharedRateLimit(client, prefix, 0.5, 3, 100)
	ctx, now := context.Background(), time.Now()
	var allowed []bool
	for i, r := range []*SharedRateLimit{a, b, a, b, a} {
		ok, err := r.Take(ctx, []byte("AK"), now)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		allowed = append(allowed, ok)
	}
	if fmt.Sprint(allowed) != "[true true true false false]" {
		t.Errorf("allowed %v, want the fleet's burst of 3 then refusals", allowed)
	}
	if ok, _ := a.Take(ctx, []byte("OTHER"), now); !ok {
		t.Error("another key is limited too")
	}
	if ttl := client.PTTL(ctx, prefix+"rate:{AK}").Val(); ttl <= 0 || ttl > 7*time.Second {
		t.Errorf("bucket key TTL %v, want ≤ burst × interval (6 s)", ttl)
	}

	// Redis gone: answers come from a local bucket, with the error reported.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	c := NewSharedRateLimit(down, prefix, 0.5, 2, 100)
	var fallback []bool
	for range 3 {
		ok, err := c.Take(ctx, []byte("AK"), now)
		if err == nil {
			t.Fatal("no error with Redis down")
		}
		fallback = append(fallback, ok)
	}
	if fmt.Sprint(fallback) != "[true true false]" {
		t.Errorf("fallback allowed %v, want a local burst of 2", fallback)
	}
}

// After Redis loses its scripts (a restart, SCRIPT FLUSH) the batched
// EVALSHA is refused with NOSCRIPT; Take loads the script and answers.
func TestSharedRateLimitAfterScriptFlush(t *testing.T) {
	client, prefix := testRedis(t, "rate-flush")
	r := NewSharedRateLimit(client, prefix, 1, 5, 100)
	ctx, now := context.Background(), time.Now()
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if ok, err := r.Take(ctx, []byte("AK"), now); !ok || err != nil {
			t.Fatalf("take %d after SCRIPT FLUSH: allowed=%v err=%v", i, ok, err)
		}
	}
	if n, err := client.Exists(ctx, prefix+"rate:{AK}").Result(); n != 1 || err != nil {
		t.Errorf("bucket key exists=%d (%v): the answer did not come from Redis", n, err)
	}
}
