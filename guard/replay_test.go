package guard

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// A full Seen evicts the marker that expires soonest, not one that must
// still refuse replays for long (a presigned URL's), and never grows past
// its bound.
func TestSeenEvictsSoonestToExpire(t *testing.T) {
	s := NewSeen(3)
	now := t0
	s.now = func() time.Time { return now }
	ctx := context.Background()
	s.FirstUse(ctx, ak, "presigned", 7*24*time.Hour)
	s.FirstUse(ctx, ak, "a", time.Minute)
	s.FirstUse(ctx, ak, "b", 2*time.Minute)
	s.FirstUse(ctx, ak, "c", 3*time.Minute) // full: "a" goes
	if first, _ := s.FirstUse(ctx, ak, "presigned", time.Hour); first {
		t.Error("the long-lived marker was evicted")
	}
	if first, _ := s.FirstUse(ctx, ak, "b", time.Minute); first {
		t.Error("a marker that expires later than the evicted one was evicted")
	}
	if len(s.expires) > 3 {
		t.Errorf("%d markers; bound is 3", len(s.expires))
	}
	if first, _ := s.FirstUse(ctx, ak, "a", time.Minute); !first {
		t.Error("the soonest to expire was not the one evicted")
	}
}

// Markers set again and again (each time after they expired) leave stale
// items behind in the queue; it is compacted, so it stays within a small
// multiple of the live markers.
func TestSeenQueueStaysBounded(t *testing.T) {
	s := NewSeen(1000)
	now := t0
	s.now = func() time.Time { return now }
	ctx := context.Background()
	for i := range 100_000 {
		s.FirstUse(ctx, ak, strconv.Itoa(i%50), time.Second)
		now = now.Add(100 * time.Millisecond)
	}
	if n, live := s.queue.len(), len(s.expires); n > 2*live+64 {
		t.Errorf("queue holds %d items for %d markers", n, live)
	}
}

// BenchmarkSeenFirstUseFull is a new signature's FirstUse once the table
// holds a million live markers (the proxy's bound); it scanned the whole
// table twice under its lock: 43 ms a call.
func BenchmarkSeenFirstUseFull(b *testing.B) {
	const full = 1_000_000
	s := NewSeen(full)
	ctx := context.Background()
	for i := range full {
		s.FirstUse(ctx, ak, strconv.Itoa(i), 25*time.Minute)
	}
	i := 0
	for b.Loop() {
		i++
		s.FirstUse(ctx, ak, "new"+strconv.Itoa(i), 25*time.Minute)
	}
}
