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
// was not used: its marker is freed (see ReuseWindow), so botocore's retry
// of it, signed within the same second, is limited again or admitted, not
// refused as a replay. KEYS: the bucket (as gcraLua), the replay marker;
// ARGV: as gcraLua, then the marker's TTL (ms), the call's nonce,
// ReuseWindow (ms); the marker's value as firstUse's. Returns 1 (admitted), 0 (limited) or -1 (replayed). A
// marker holding the call's own nonce was set by a first try of this call
// whose answer was lost (see nonces): that try admitted it, and the bucket
// is not charged again (a first try that was limited freed the marker: the
// retry is decided afresh, as the client's own would be).
var admit = redis.NewScript(`
local ttl = ARGV[3]
if not redis.call('SET', KEYS[2], ARGV[4] .. '/' .. ARGV[3], 'PX', ARGV[3], 'NX') then
	local v = redis.call('GET', KEYS[2])
	local i = string.find(v, '/', 1, true)
	local who = v
	ttl = nil
	if i then who, ttl = string.sub(v, 1, i - 1), string.sub(v, i + 1) end
	if who == ARGV[4] then return 1 end
	if who ~= '` + freeMarker + `' or not ttl or tonumber(ttl) - redis.call('PTTL', KEYS[2]) >= tonumber(ARGV[5]) then return -1 end
	redis.call('SET', KEYS[2], ARGV[4] .. '/' .. ttl, 'KEEPTTL')
end
local function gcra()
` + gcraLua + `
end
local verdict = gcra()
if verdict == 0 then redis.call('SET', KEYS[2], '` + freeMarker + `/' .. ttl, 'KEEPTTL') end
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
	v, _, err := a.AdmitMarked(ctx, accessKey, signatureHash, ttl)
	return v, err
}

// AdmitMarked is Admit for a caller that may Release the marker: it
// returns the nonce the marker holds.
func (a *SharedAdmission) AdmitMarked(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (Admission, string, error) {
	keys := []string{rateKey(a.rate.prefix, accessKey), seenKey(a.redis.prefix, accessKey, signatureHash)}
	nonce := a.redis.nonces.next()
	n, err := a.redis.batch.run(ctx, admit, keys, a.rate.interval, a.rate.burst, max(ttl.Milliseconds(), 1), nonce, a.redis.reuse.Milliseconds())
	switch {
	case err != nil:
		return Admitted, "", fmt.Errorf("guard: redis: %w", err)
	case n < 0:
		return Replayed, "", nil
	case n == 0:
		return Limited, "", nil
	}
	return Admitted, nonce, nil
}

// Release frees the replay marker AdmitMarked set with nonce: its request
// was not used after all (see ReuseWindow).
func (a *SharedAdmission) Release(ctx context.Context, accessKey []byte, signatureHash, nonce string) error {
	return a.redis.Release(ctx, accessKey, signatureHash, nonce)
}
