package guard

import (
	"context"
	"sync"
	"time"
)

// Seen remembers request signatures in this process, for replay protection
// without Redis (a single replica). Safe for concurrent use.
type Seen struct {
	mu      sync.Mutex
	expires map[string]time.Time
	max     int
	now     func() time.Time
}

// NewSeen keeps at most max signatures (oldest-expiring evicted first when
// full; a replay of an evicted one would pass, so size it above the
// requests expected within the timestamp window).
func NewSeen(max int) *Seen {
	return &Seen{expires: map[string]time.Time{}, max: max, now: time.Now}
}

// FirstUse records signatureHash for ttl and reports whether it was new
// (the hash covers the whole signature: the access key adds nothing here).
func (s *Seen) FirstUse(_ context.Context, _ []byte, signatureHash string, ttl time.Duration) (bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.expires[signatureHash]; ok && now.Before(exp) {
		return false, nil
	}
	if len(s.expires) >= s.max {
		for k, exp := range s.expires {
			if !now.Before(exp) {
				delete(s.expires, k)
			}
		}
		if len(s.expires) >= s.max {
			var oldest string
			var oldestExp time.Time
			for k, exp := range s.expires {
				if oldest == "" || exp.Before(oldestExp) {
					oldest, oldestExp = k, exp
				}
			}
			delete(s.expires, oldest)
		}
	}
	s.expires[signatureHash] = now.Add(ttl)
	return true, nil
}
