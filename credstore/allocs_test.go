//go:build !race

package credstore

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ec2proxy/ec2proxy/internal/flightcache"
)

func TestCacheHitAllocs(t *testing.T) {
	b := &countingBackend{records: map[string]Record{"AK": {Secret: "S"}}}
	var c clock
	var outcomes [flightcache.NumOutcomes]atomic.Int64
	cache := newTestCache(b, &c, &outcomes)
	key := []byte("AK")
	ctx := context.Background()
	cache.Get(ctx, key)
	if n := testing.AllocsPerRun(1000, func() { cache.Get(ctx, key) }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
}
