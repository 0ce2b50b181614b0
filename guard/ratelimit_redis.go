package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraLua is the generic cell rate algorithm over one Redis key per access
// key, KEYS[1] = <prefix>rate:{<key>}, holding the theoretical arrival time
// (µs) of the next request. Redis's clock is used so replicas with skewed
// clocks agree. ARGV: emission interval (µs per request), burst (requests).
// Returns 1 (allowed) or 0.
const gcraLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
return 1
`

var gcra = redis.NewScript(gcraLua)

// SharedRateLimit is RateLimit for a whole fleet: one bucket per access key
// in Redis, one command per request, batched with other requests' commands.
// While Redis fails it falls back to a per-replica bucket with the same
// parameters, so an outage neither blocks every request nor lifts the limit.
type SharedRateLimit struct {
	batch    *batcher
	prefix   string
	interval int64 // µs
	burst    int
	local    *RateLimit
}

// NewSharedRateLimit limits each key to rate requests a second across all
// replicas using client, with bursts of burst.
func NewSharedRateLimit(client redis.UniversalClient, prefix string, rate float64, burst int, maxKeys int) *SharedRateLimit {
	return newSharedRateLimit(newBatcher(client), prefix, rate, burst, maxKeys)
}

func newSharedRateLimit(batch *batcher, prefix string, rate float64, burst int, maxKeys int) *SharedRateLimit {
	return &SharedRateLimit{
		batch: batch, prefix: prefix,
		interval: int64(float64(time.Second/time.Microsecond) / rate),
		burst:    max(burst, 1),
		local:    NewRateLimit(rate, burst, maxKeys),
	}
}

// Take takes a token for key; err reports a Redis failure (the answer then
// came from the local fallback bucket).
func (r *SharedRateLimit) Take(ctx context.Context, key []byte, now time.Time) (bool, error) {
	n, err := r.batch.runOnce(ctx, gcra, []string{rateKey(r.prefix, key)}, r.interval, r.burst)
	if err != nil {
		return r.local.Allow(key, now), fmt.Errorf("guard: redis rate limit: %w", err)
	}
	return n == 1, nil
}

func rateKey(prefix string, accessKey []byte) string {
	return prefix + "rate:{" + string(accessKey) + "}"
}
