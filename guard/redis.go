package guard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis shares failure counts, locks and replay markers between replicas:
//
//	<prefix>fail:{<key>}    set of failure fingerprints, expiring with the window
//	<prefix>lock:{<key>}    present while the key is locked (value: unix ms of the end)
//	<prefix>seen:{<key>}:<hash>  a signature already used (replay protection):
//	                        "<nonce of the call that set it>/<its TTL>", or "free/<TTL>" (see ReuseWindow)
//	<prefix>rate:{<key>}    the fleet rate limit's bucket (SharedRateLimit)
//
// <key> is an access key, or "client:<address>" for unknown keys. The braces
// are a cluster hash tag: one access key's replay markers and bucket share a
// slot, so one script can check both (SharedAdmission).
type Redis struct {
	client redis.UniversalClient
	batch  *batcher // the per-request commands: replay markers and rate limits
	prefix string
	nonces nonces
	reuse  time.Duration // ReuseWindow (shorter in tests)
}

// NewRedis uses client with key prefix (the credential store's).
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, batch: newBatcher(client), prefix: prefix, nonces: newNonces(), reuse: ReuseWindow}
}

// nonces are the values of the replay markers this process sets, each
// unique: a marker holding a call's own nonce was set by that call. go-redis
// sends a pipeline again when its answer times out (a slow Redis, a fork),
// and the first try may have run; the retry must not find the request a
// replay of itself (found by a review: 400 RequestExpired for a first use).
type nonces struct {
	prefix string
	n      *atomic.Uint64
}

func newNonces() nonces {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return nonces{prefix: base64.RawURLEncoding.EncodeToString(b[:]) + ".", n: new(atomic.Uint64)}
}

func (n nonces) next() string { return n.prefix + strconv.FormatUint(n.n.Add(1), 36) }

var _ Shared = (*Redis)(nil)

// AddFailure implements Shared.
func (r *Redis) AddFailure(ctx context.Context, key, fingerprint string, window time.Duration) (int, time.Time, error) {
	failKey, lockKey := r.prefix+"fail:{"+key+"}", r.prefix+"lock:{"+key+"}"
	var card *redis.IntCmd
	var lock *redis.StringCmd
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, failKey, fingerprint)
		p.ExpireNX(ctx, failKey, window) // the window starts at the first failure
		card = p.SCard(ctx, failKey)
		lock = p.Get(ctx, lockKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, time.Time{}, fmt.Errorf("guard: redis: %w", err)
	}
	var until time.Time
	if ms, err := lock.Int64(); err == nil {
		until = time.UnixMilli(ms)
	}
	return int(card.Val()), until, nil
}

// Lock implements Shared.
func (r *Redis) Lock(ctx context.Context, key string, until time.Time) error {
	ttl := time.Until(until)
	if ttl <= 0 {
		return nil
	}
	if err := r.client.Set(ctx, r.prefix+"lock:{"+key+"}", until.UnixMilli(), ttl).Err(); err != nil {
		return fmt.Errorf("guard: redis: %w", err)
	}
	// Replicas that have seen no failure for key learn of the lock now,
	// not at their first failure (they only read local state per request).
	if err := r.client.Publish(ctx, r.prefix+"events", lockEvent+strconv.FormatInt(until.UnixMilli(), 10)+" "+key).Err(); err != nil {
		return fmt.Errorf("guard: redis: lock set but not announced: %w", err)
	}
	return nil
}

// lockEvent starts the message announcing a lock on the events channel
// (credstore.Redis.EventsChannel): "lock <unix ms of the end> <key>".
const lockEvent = "lock "

// ParseLockEvent reads a lock announcement from the events channel.
func ParseLockEvent(payload string) (key string, until time.Time, ok bool) {
	rest, ok := strings.CutPrefix(payload, lockEvent)
	if !ok {
		return "", time.Time{}, false
	}
	ms, key, ok := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || key == "" {
		return "", time.Time{}, false
	}
	return key, time.UnixMilli(n), true
}

// A marker's value is "<nonce>/<TTL ms>": the nonce of the call that set
// or took it, or "free" once released; and the TTL it was first set with,
// which KEEPTTL keeps counting down, so that its age is that TTL less
// PTTL. Its own TTL, not the asking replica's: replicas in a rolling change
// of auth.timestamp_window compute different ones (found by a review: a
// shorter one read a released marker as younger, for minutes).

// firstUse sets a replay marker unless one is there, and reports whether
// it is this call's (see nonces), or a released one it may take (see
// ReuseWindow). KEYS[1]: the marker; ARGV: the call's nonce, the marker's
// TTL (ms), ReuseWindow (ms). Returns 1 (first use) or 0.
var firstUse = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1] .. '/' .. ARGV[2], 'PX', ARGV[2], 'NX') then return 1 end
local v = redis.call('GET', KEYS[1])
local i = string.find(v, '/', 1, true)
local who, ttl = v, nil
if i then who, ttl = string.sub(v, 1, i - 1), tonumber(string.sub(v, i + 1)) end
if who == ARGV[1] then return 1 end
if who == '` + freeMarker + `' and ttl and ttl - redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
	redis.call('SET', KEYS[1], ARGV[1] .. '/' .. ttl, 'KEEPTTL')
	return 1
end
return 0
`)

// release frees a marker that holds the caller's nonce (KEYS[1]; ARGV[1]):
// only the call that set it may, so a late retry of this command (go-redis
// sends it again when its answer times out) cannot free the marker of the
// request that took it since (found by a review).
var release = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local i = string.find(v, '/', 1, true)
if not i or string.sub(v, 1, i - 1) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], '` + freeMarker + `' .. string.sub(v, i), 'KEEPTTL')
return 1
`)

// FirstUse records a request signature and reports whether it is new
// (SET NX with expiry ttl): replay protection.
func (r *Redis) FirstUse(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (bool, error) {
	_, first, err := r.Mark(ctx, accessKey, signatureHash, ttl)
	return first, err
}

// Mark is FirstUse for a caller that may Release the marker: it returns
// the nonce the marker holds.
func (r *Redis) Mark(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (string, bool, error) {
	nonce := r.nonces.next()
	n, err := r.batch.run(ctx, firstUse, []string{seenKey(r.prefix, accessKey, signatureHash)}, nonce, max(ttl.Milliseconds(), 1), r.reuse.Milliseconds())
	if err != nil {
		return "", false, fmt.Errorf("guard: redis: %w", err)
	}
	return nonce, n == 1, nil
}

// Release frees the marker Mark (or SharedAdmission.AdmitMarked) set with
// nonce: its request was not used after all (see ReuseWindow).
func (r *Redis) Release(ctx context.Context, accessKey []byte, signatureHash, nonce string) error {
	if _, err := r.batch.run(ctx, release, []string{seenKey(r.prefix, accessKey, signatureHash)}, nonce); err != nil {
		return fmt.Errorf("guard: redis: %w", err)
	}
	return nil
}

func seenKey(prefix string, accessKey []byte, signatureHash string) string {
	return prefix + "seen:{" + string(accessKey) + "}:" + signatureHash
}

// NewRateLimit returns a rate limiter whose buckets live in this Redis,
// shared by every replica.
func (r *Redis) NewRateLimit(rate float64, burst, maxKeys int) *SharedRateLimit {
	return newSharedRateLimit(r.batch, r.prefix, rate, burst, maxKeys)
}
