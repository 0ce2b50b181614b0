package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Admission is the verdict on a verified request.
type Admission int8

const (
	Admitted Admission = iota
	Replayed           // its signature was used before
	Limited            // its access key is over the rate limit
)

// admit is replay protection and the fleet rate limit in one script, so a
// request costs one Redis command instead of two. The marker is set first:
// a replay is refused without spending the key's tokens. A limited request
// was not used, so its marker goes again: botocore's retry of it, signed
// within the same second, carries the same signature, and must be limited
// again or admitted, not refused as a replay. KEYS: the bucket (as
// gcraLua), the replay marker; ARGV: as gcraLua, then the marker's TTL
// (ms), the call's nonce. Returns 1 (admitted), 0 (limited) or -1
// (replayed). A marker holding the call's own nonce was set by a first try
// of this call whose answer was lost (see nonces): that try admitted it,
// and the bucket is not charged again. (A first try that was limited left
// no marker: the retry is decided afresh, as the client's own retry is.)
var admit = redis.NewScript(`
if not redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3], 'NX') then
	if redis.call('GET', KEYS[2]) == ARGV[4] then return 1 end
	return -1
end
local function gcra()
` + gcraLua + `
end
local verdict = gcra()
if verdict == 0 then redis.call('DEL', KEYS[2]) end
return verdict
`)

// SharedAdmission applies Redis replay protection and SharedRateLimit
// together, for a fleet that has both on.
type SharedAdmission struct {
	redis *Redis
	rate  *SharedRateLimit
}

// NewAdmission combines this Redis's replay markers with rate.
func (r *Redis) NewAdmission(rate *SharedRateLimit) *SharedAdmission {
	return &SharedAdmission{redis: r, rate: rate}
}

// Admit records the request's signature and takes a token for its key. An
// error means neither could be decided: replay protection must then fail
// closed, so unlike SharedRateLimit.Take there is no local fallback.
func (a *SharedAdmission) Admit(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (Admission, error) {
	keys := []string{rateKey(a.rate.prefix, accessKey), seenKey(a.redis.prefix, accessKey, signatureHash)}
	n, err := a.redis.batch.run(ctx, admit, keys, a.rate.interval, a.rate.burst, max(ttl.Milliseconds(), 1), a.redis.nonces.next())
	switch {
	case err != nil:
		return Admitted, fmt.Errorf("guard: redis: %w", err)
	case n < 0:
		return Replayed, nil
	case n == 0:
		return Limited, nil
	}
	return Admitted, nil
}

// Release deletes the replay marker Admit set: its request was not used
// after all (see proxy.Replayer).
func (a *SharedAdmission) Release(ctx context.Context, accessKey []byte, signatureHash string) error {
	return a.redis.Release(ctx, accessKey, signatureHash)
}
