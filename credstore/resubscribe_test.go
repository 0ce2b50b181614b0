package credstore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// gatedBackend reads the record, then waits for release before answering:
// a read in flight (slow Redis) while the subscription comes back.
type gatedBackend struct {
	mu      sync.Mutex
	secret  string
	read    chan struct{}
	release chan struct{}
}

func (b *gatedBackend) Get(_ context.Context, key string) (Record, error) {
	b.mu.Lock()
	r := Record{AccessKey: key, Secret: b.secret, UserID: "u", ProjectID: "p", Enabled: true}
	b.mu.Unlock()
	b.read <- struct{}{}
	<-b.release
	return r, nil
}

// Found by a review: a record read while unsubscribed (promised fresh for only
// unsubscribed_ttl, since changes cannot be heard) but whose load finishes
// after Subscribed(true) was cached for the full cache_ttl; a change made
// before the subscription was active is never announced to this replica,
// so the old secret/enabled state was served for cache_ttl (60 s), not 1 s.
func TestCacheReadWhileUnsubscribedStaysShort(t *testing.T) {
	b := &gatedBackend{secret: "OLD", read: make(chan struct{}), release: make(chan struct{})}
	var c clock
	c.advance(time.Hour)
	cache := NewCache(b, func(r Record) string { return r.Secret }, CacheOptions{TTL: time.Minute, Now: c.now})
	cache.SetTTL(time.Second) // Watch: not subscribed yet
	done := make(chan string)
	go func() { v, _ := cache.Get(context.Background(), []byte("AK")); done <- v }()
	<-b.read // the load has read "OLD"
	b.mu.Lock()
	b.secret = "NEW" // rotated; the event is published while this replica is not subscribed
	b.mu.Unlock()
	cache.SetTTL(time.Minute) // Subscribed(true)
	close(b.release)
	<-done
	c.advance(10 * time.Second)
	go func() { <-b.read }() // let a reload through
	if v, _ := cache.Get(context.Background(), []byte("AK")); v != "NEW" {
		t.Errorf("10 s later the cache still serves %q: a read made while unsubscribed was kept for cache_ttl", v)
	}
}
