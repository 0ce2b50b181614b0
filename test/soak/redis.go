package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/credstore"
)

// redisSetup puts the soak's keys into Redis (sealed, under a fresh prefix)
// and returns the configuration lines that make ec2proxy use them, with the
// scale-out machinery on: change events, the fleet rate limit (high enough
// never to refuse) and the shipped policy. churn toggles one extra key
// every second, outside the load's range, so invalidation events flow all
// the time. cleanup removes the keys.
func redisSetup(ctx context.Context, addr, dir string, keys int) (config string, churn func(context.Context), cleanup func(), err error) {
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(credstore.GenerateKey()), 0o600); err != nil {
		return "", nil, nil, err
	}
	ring, err := credstore.LoadKeyring(keyFile)
	if err != nil {
		return "", nil, nil, err
	}
	client := redis.NewClient(&redis.Options{Addr: addr})
	prefix := fmt.Sprintf("ec2proxy-soak:%d:", time.Now().UnixNano())
	store := credstore.NewRedis(client, prefix, ring)
	record := func(i int, enabled bool) credstore.Record {
		return credstore.Record{AccessKey: fmt.Sprintf("AK%06d", i), Secret: fmt.Sprintf("SK%06d", i), UserID: fmt.Sprint("u", i),
			ProjectID: fmt.Sprint("p", i), Roles: []string{"member"}, Enabled: enabled}
	}
	for i := 0; i <= keys; i++ { // keys itself is the churned one
		if err := store.Put(ctx, record(i, true)); err != nil {
			client.Close()
			return "", nil, nil, err
		}
	}
	config = fmt.Sprintf(`credentials: {store: redis, encryption_key_file: %q, cache_ttl: 5s}
redis: {addrs: [%q], key_prefix: %q}
protection: {rate_limit: {requests_per_second: 100000, burst: 100000, scope: fleet}}
policy: {enabled: true}
`, keyFile, addr, prefix)
	churn = func(ctx context.Context) {
		for enabled := false; ; enabled = !enabled {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			_ = store.Put(ctx, record(keys, enabled))
		}
	}
	cleanup = func() {
		c := context.Background()
		if ks, _ := client.Keys(c, prefix+"*").Result(); len(ks) > 0 {
			client.Del(c, ks...)
		}
		client.Close()
	}
	return config, churn, cleanup, nil
}
