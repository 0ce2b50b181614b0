package guard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// Two replicas over one real Redis: failures add up, the lock is seen by
// both, replay markers are shared.
func TestRedisShared(t *testing.T) {
	client, prefix := testRedis(t, "guard")
	shared := NewRedis(client, prefix)
	cfg := LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: time.Minute}
	a, b := NewLockout(cfg, shared), NewLockout(cfg, shared)
	ctx := context.Background()
	now := time.Now()
	a.Failed(ctx, "AK", "1", now)
	a.Failed(ctx, "AK", "1", now) // a retry: once
	b.Failed(ctx, "AK", "2", now)
	if n, _ := client.SCard(ctx, prefix+"fail:{AK}").Result(); n != 2 {
		t.Errorf("shared failure set has %d members; want 2", n)
	}
	if ttl, _ := client.TTL(ctx, prefix+"fail:{AK}").Result(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("failure set TTL %v; want the window", ttl)
	}
	if _, locked, err := b.Failed(ctx, "AK", "3", now); !locked || err != nil {
		t.Fatalf("third distinct failure: locked=%v %v", locked, err)
	}
	if ttl, _ := client.PTTL(ctx, prefix+"lock:{AK}").Result(); ttl <= 0 {
		t.Errorf("no shared lock (PTTL %v)", ttl)
	}
	if _, locked, _ := a.Failed(ctx, "AK", "4", now); !locked {
		t.Error("replica a did not see the lock b set")
	}

	if first, err := shared.FirstUse(ctx, ak, "sig", time.Minute); !first || err != nil {
		t.Errorf("FirstUse = %v, %v", first, err)
	}
	if first, _ := shared.FirstUse(ctx, ak, "sig", time.Minute); first {
		t.Error("replay through Redis accepted")
	}
}

// testRedis is a client of the test Redis and a fresh key prefix, whose
// keys are deleted when the test ends.
func testRedis(t *testing.T, name string) (*redis.Client, string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	prefix := fmt.Sprintf("ec2proxy-test:%s:%d:", name, time.Now().UnixNano())
	t.Cleanup(func() {
		if keys, _ := client.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
		client.Close()
	})
	return client, prefix
}
