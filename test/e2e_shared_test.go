package test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// Two replicas (two pipelines in this process, sharing Redis): a token
// obtained by one serves the other, and a change made in Redis reaches both
// caches within a second, though their cache TTL is an hour.
func TestReplicasShareTokensAndHearChanges(t *testing.T) {
	long := func(c *configs.Config) { c.Credentials.CacheTTL = time.Hour }
	a, b := startReplicas(t, long)
	for _, s := range []*stack{a, b} {
		if _, ok := eventually(5*time.Second, func() bool { return s.metric("ec2proxy_events_subscribed") == 1 }); !ok {
			t.Fatal("a replica never subscribed to change events")
		}
	}
	k := demoKey(t)
	putKeys(t, a.store, k)
	warmUp(t, a, k)
	wantOK(t, "b, with a's token", ec2Call(b.url, "/", k.access, k.secret, nil))
	calls := a.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens") + b.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens")
	if calls != 1 {
		t.Errorf("%v ec2tokens calls for two replicas, want 1", calls)
	}
	if hits := b.metric("ec2proxy_shared_tokens_total", "result", "hit"); hits != 1 {
		t.Errorf("b's shared token hits = %v, want 1", hits)
	}

	// Disable the key as the CLI would; both replicas refuse it within 1 s.
	rec, err := a.store.Get(context.Background(), k.access)
	if err != nil {
		t.Fatal(err)
	}
	rec.Enabled = false
	if err := a.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*stack{"a": a, "b": b} {
		took, ok := eventually(time.Second, func() bool { return ec2Call(s.url, "/", k.access, k.secret, nil).status == 401 })
		if !ok {
			t.Errorf("replica %s still serves the disabled key after 1 s", name)
		}
		t.Logf("replica %s refused the disabled key after %v", name, took.Round(time.Millisecond))
	}
	// Enable again: served again at once (the negative state is not kept).
	rec.Enabled = true
	if err := a.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*stack{"a": a, "b": b} {
		if _, ok := eventually(5*time.Second, func() bool { return ec2Call(s.url, "/", k.access, k.secret, nil).status == 200 }); !ok {
			t.Errorf("replica %s does not serve the key enabled again", name)
		}
	}
	if n := b.metric("ec2proxy_invalidations_total"); n < 2 {
		t.Errorf("b applied %v invalidations, want ≥ 2", n)
	}
}

// A replica that loses its subscription may miss changes: it falls back to
// credentials.unsubscribed_ttl for what it has cached, so a change nobody
// announced (made while it was deaf) still arrives within that TTL.
func TestLostSubscriptionShortensCaching(t *testing.T) {
	name := fmt.Sprintf("ec2proxy-deaf-%d", time.Now().UnixNano())
	s := startStack(t, func(c *configs.Config) {
		c.Credentials.CacheTTL = time.Hour
		c.Redis.ClientName = name
	})
	if _, ok := eventually(5*time.Second, func() bool { return s.metric("ec2proxy_events_subscribed") == 1 }); !ok {
		t.Fatal("never subscribed to change events")
	}
	k := demoKey(t)
	putKeys(t, s.store, k)
	warmUp(t, s, k)

	admin := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	defer admin.Close()
	ctx := context.Background()
	killSubscriber(t, admin, name)
	time.Sleep(200 * time.Millisecond)
	// Disable behind the proxies' back: no event is published.
	if err := admin.HSet(ctx, s.store.Key(k.access), "enabled", "0").Err(); err != nil {
		t.Fatal(err)
	}
	took, ok := eventually(4*time.Second, func() bool { return ec2Call(s.url, "/", k.access, k.secret, nil).status == 401 })
	if !ok {
		t.Fatal("an unannounced change made after the subscription was lost is still not seen after 4 s (cache_ttl is 1h)")
	}
	t.Logf("unannounced change seen after %v (unsubscribed_ttl 1s)", took.Round(time.Millisecond))
	if _, ok := eventually(5*time.Second, func() bool { return s.metric("ec2proxy_events_subscribed") == 1 }); !ok {
		t.Error("did not resubscribe")
	}
}

// killSubscriber closes the pub/sub connections of clients named name
// (other tests' subscribers in the same Redis are left alone).
func killSubscriber(t *testing.T, admin *redis.Client, name string) {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+name+" ") && strings.Contains(line, " sub=1 ") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	if killed == 0 {
		t.Fatalf("no subscriber named %s in CLIENT LIST", name)
	}
}

// protection.rate_limit.scope fleet: one bucket per key for all replicas.
func TestRateLimitSharedByTheFleet(t *testing.T) {
	limit := func(c *configs.Config) {
		c.Protection.RateLimit = configs.RateLimit{RequestsPerSecond: 0.01, Burst: 2, Scope: configs.ScopeFleet}
	}
	a, b := startReplicas(t, limit)
	k := demoKey(t)
	putKeys(t, a.store, k)
	// Alternate between the replicas: the limiter lets exactly the burst
	// through (an answer other than RequestLimitExceeded, such as a slow
	// Keystone's 503, still spent a token), then refuses on both.
	passed := 0
	for i := 0; i < 6; i++ {
		s := []*stack{a, b}[i%2]
		r := ec2Call(s.url, "/", k.access, k.secret, nil)
		if r.code == "RequestLimitExceeded" {
			break
		}
		passed++
	}
	if passed != 2 {
		t.Fatalf("%d requests passed the limiter across two replicas, want the fleet's burst (2)", passed)
	}
	wantFault(t, "a: the fleet's burst is spent", ec2Call(a.url, "/", k.access, k.secret, nil), 503, "RequestLimitExceeded", 5*time.Second)
	wantFault(t, "b: the fleet's burst is spent", ec2Call(b.url, "/", k.access, k.secret, nil), 503, "RequestLimitExceeded", 5*time.Second)
}

// Replay protection with the fleet rate limit: one Redis script decides
// both for every replica. A request accepted by one replica is a replay on
// the other, and replays spend none of the key's tokens.
func TestReplayAndRateLimitSharedByTheFleet(t *testing.T) {
	protect := func(c *configs.Config) {
		c.Protection.RateLimit = configs.RateLimit{RequestsPerSecond: 0.01, Burst: 2, Scope: configs.ScopeFleet}
		c.Protection.Replay.Enabled = true
	}
	a, b := startReplicas(t, protect)
	k := demoKey(t)
	putKeys(t, a.store, k)
	// Signed for the host without a port, as boto 2 signs: both replicas
	// (on different ports) accept the same signature.
	sign := func(nonce string) url.Values {
		return signV2("POST", "127.0.0.1", "/", k.access, k.secret, map[string]string{"Nonce": nonce})
	}
	first := sign("1")
	wantOK(t, "a: first use", ec2Post(a.url, "/", first))
	for i := range 3 {
		s := []*stack{b, a}[i%2]
		wantFault(t, "a replay", ec2Post(s.url, "/", first), 400, "RequestExpired", 5*time.Second)
	}
	wantOK(t, "b: a second request (the burst is 2; the replays spent nothing)", ec2Post(b.url, "/", sign("2")))
	limited := sign("3")
	wantFault(t, "a: the fleet's burst is spent", ec2Post(a.url, "/", limited), 503, "RequestLimitExceeded", 5*time.Second)
	// The limited request was not used: sent again (a client's retry in
	// the same second), it is limited again, not a replay.
	wantFault(t, "b: the limited request again", ec2Post(b.url, "/", limited), 503, "RequestLimitExceeded", 5*time.Second)
	// Markers and the bucket share the key's cluster hash tag (one script
	// touches both).
	admin := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	defer admin.Close()
	ctx := context.Background()
	markers, err := admin.Keys(ctx, a.cfg.Redis.KeyPrefix+"seen:{"+k.access+"}:*").Result()
	free := 0
	for _, m := range markers {
		if strings.HasPrefix(admin.Get(ctx, m).Val(), "free/") {
			free++
		}
	}
	if err != nil || len(markers) != 3 || free != 1 {
		t.Errorf("replay markers %q (%v), %d free; want 3: the two admitted requests, and the limited one's, free", markers, err, free)
	}
	if n, err := admin.Exists(ctx, a.cfg.Redis.KeyPrefix+"rate:{"+k.access+"}").Result(); n != 1 || err != nil {
		t.Errorf("fleet bucket exists=%d (%v)", n, err)
	}
}
