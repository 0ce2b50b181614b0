package guard

import (
	"context"
	"sync"
	"time"
)

// ReuseWindow is how long after a signature's first use its released
// marker lets the same signature through once more. A marker is released
// when its request was refused before the backend saw it, with an answer
// that asks for a retry (proxy.Replayer); a client that signs the retry
// within the same second (SigV2's Timestamp and SigV4's X-Amz-Date count
// whole seconds) sends the very same signature, at most a second after the
// first plus the time on the way. Later the same bytes are a replay again:
// they can only be a copy (found by a review: a deleted marker let a copy
// of a limited request run, after the client's own retry, for the rest of
// the timestamp window).
const ReuseWindow = 2 * time.Second

// freeMarker is the value of a released Redis marker.
const freeMarker = "free"

// Seen remembers request signatures in this process, for replay protection
// without Redis (a single replica). Safe for concurrent use.
type Seen struct {
	mu      sync.Mutex
	expires map[string]seenMark
	queue   expiryQueue // the same markers, soonest to expire first
	max     int
	now     func() time.Time
}

type seenMark struct {
	exp, set int64 // Unix nanoseconds: when it expires, when it was set
	free     bool  // released (see ReuseWindow)
}

// NewSeen keeps at most max signatures (the soonest to expire evicted
// first when full; a replay of an evicted one would pass, so size it above
// the requests expected within the timestamp window).
func NewSeen(max int) *Seen {
	return &Seen{expires: map[string]seenMark{}, max: max, now: time.Now}
}

// SetClock makes s read time from now (a proxy with its own clock; tests).
func (s *Seen) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// FirstUse records signatureHash for ttl and reports whether it was new
// (the hash covers the whole signature: the access key adds nothing here).
// It costs O(log n), full or not.
func (s *Seen) FirstUse(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (bool, error) {
	_, first, err := s.Mark(ctx, accessKey, signatureHash, ttl)
	return first, err
}

// Mark is FirstUse for a caller that may Release the marker; in this
// process no nonce is needed ("").
func (s *Seen) Mark(_ context.Context, _ []byte, signatureHash string, ttl time.Duration) (string, bool, error) {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.expires[signatureHash]; ok && now < m.exp {
		if !m.free || now-m.set >= int64(ReuseWindow) {
			return "", false, nil
		}
		m.free = false // used now; it keeps its expiry
		s.expires[signatureHash] = m
		return "", true, nil
	}
	// Expired markers leave as they surface; then the soonest to expire
	// makes room.
	s.queue.expire(now, s.stale, s.forget)
	for len(s.expires) >= s.max && s.queue.len() > 0 {
		s.forget(s.queue.pop())
	}
	exp := now + int64(ttl)
	s.expires[signatureHash] = seenMark{exp: exp, set: now}
	s.queue.push(signatureHash, exp)
	s.queue.compact(len(s.expires), func(it expiryItem) bool { return !s.stale(it) })
	return "", true, nil
}

// Release frees signatureHash's marker: its request was not used after
// all. The same signature passes once more if it comes within ReuseWindow
// of its first use.
func (s *Seen) Release(_ context.Context, _ []byte, signatureHash, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.expires[signatureHash]; ok {
		m.free = true
		s.expires[signatureHash] = m
	}
	return nil
}

// stale reports a queue item whose marker has since been set again, or left.
func (s *Seen) stale(it expiryItem) bool {
	m, ok := s.expires[it.key]
	return !ok || m.exp != it.at
}

// forget deletes the marker of a popped item, unless it is stale.
func (s *Seen) forget(it expiryItem) {
	if !s.stale(it) {
		delete(s.expires, it.key)
	}
}
