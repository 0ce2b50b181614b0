// Package guard refuses abuse before it costs anything: a lockout after
// repeated failed signatures (per access key, or per client address for
// unknown keys), per-access-key rate limiting, and optional replay
// protection. Counters are shared between replicas through a Shared store
// (Redis) when one is given; the hot path reads only local state.
package guard

import (
	"context"
	"sync"
	"time"
)

// LockoutConfig: MaxFailures distinct failed signatures within Window lock
// a key for Duration (nova's Lockout filter defaults: 5, 15 min, 15 min).
type LockoutConfig struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
	// MaxTracked bounds the keys with recent failures held in memory.
	MaxTracked int
}

// Shared keeps failure counts and locks where every replica sees them.
type Shared interface {
	// AddFailure records fingerprint among key's failures (a repeat counts
	// once) and returns how many distinct failures key has in the window
	// begun by its first, and until when key is locked (zero if it is not).
	AddFailure(ctx context.Context, key, fingerprint string, window time.Duration) (failures int, lockedUntil time.Time, err error)
	// Lock locks key until the given time.
	Lock(ctx context.Context, key string, until time.Time) error
}

// Lockout tracks failed signatures. Safe for concurrent use.
type Lockout struct {
	cfg    LockoutConfig
	shared Shared // nil: this replica only
	mu     sync.RWMutex
	keys   map[string]*failures
	queue  expiryQueue // the keys, by when their window and lock are over
}

type failures struct {
	windowEnd    time.Time
	fingerprints map[string]struct{}
	lockedUntil  time.Time
}

// over is when f's window and lock are both over (Unix nanoseconds).
func (f *failures) over() int64 {
	if f.lockedUntil.After(f.windowEnd) {
		return f.lockedUntil.UnixNano()
	}
	return f.windowEnd.UnixNano()
}

// NewLockout returns a lockout; shared may be nil.
func NewLockout(cfg LockoutConfig, shared Shared) *Lockout {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = 100_000
	}
	return &Lockout{cfg: cfg, shared: shared, keys: map[string]*failures{}}
}

// Locked reports whether key is locked at now, and until when. It takes a
// read lock and allocates nothing: keys without recent failures are not in
// the map at all.
func (l *Lockout) Locked(key []byte, now time.Time) (time.Time, bool) {
	l.mu.RLock()
	f := l.keys[string(key)]
	var until time.Time
	if f != nil {
		until = f.lockedUntil
	}
	l.mu.RUnlock()
	return until, now.Before(until)
}

// Failure is what recording one failed signature concluded.
type Failure struct {
	Until  time.Time // the key's lock, when Locked
	Locked bool
	// LockedNow: this failure set the lock, not one set already (by a
	// failure recorded at the same time here, or by another replica).
	// Counting locks by Locked alone counted one lock once per failure
	// that reached the maximum together (found by a review).
	LockedNow bool
}

// Failed is Record without LockedNow.
func (l *Lockout) Failed(ctx context.Context, key, fingerprint string, now time.Time) (until time.Time, locked bool, err error) {
	f, err := l.Record(ctx, key, fingerprint, now)
	return f.Until, f.Locked, err
}

// Record records a failed signature for key (fingerprint identifies the
// request, so that a client retrying the same request counts once) and
// reports whether key is now locked. A Shared error is returned with the
// local verdict: the lockout degrades to per-replica, never to open.
func (l *Lockout) Record(ctx context.Context, key, fingerprint string, now time.Time) (Failure, error) {
	count, lockedUntil, known := l.note(key, fingerprint, now, false)
	if known {
		return Failure{Until: lockedUntil, Locked: now.Before(lockedUntil)}, nil
	}
	return l.conclude(ctx, key, fingerprint, count, now)
}

// FailedLocally is RecordLocally without LockedNow.
func (l *Lockout) FailedLocally(key, fingerprint string, now time.Time) (until time.Time, locked, ok bool) {
	f, ok := l.RecordLocally(key, fingerprint, now)
	return f.Until, f.Locked, ok
}

// RecordLocally is Record for a caller that must not wait on the shared
// store (the event loop): it records the failure and answers when that
// takes no round trip (no shared store, a repeated fingerprint, a key
// already locked); otherwise it changes nothing and reports ok false, and
// the caller calls Record where it may wait.
func (l *Lockout) RecordLocally(key, fingerprint string, now time.Time) (f Failure, ok bool) {
	count, lockedUntil, known := l.note(key, fingerprint, now, l.shared != nil)
	switch {
	case known:
		return Failure{Until: lockedUntil, Locked: now.Before(lockedUntil)}, true
	case l.shared != nil:
		return Failure{}, false
	}
	f, _ = l.conclude(context.Background(), key, fingerprint, count, now) // no shared store: no I/O
	return f, true
}

// note records fingerprint among key's failures (unless onlyKnown) and
// returns their count and key's lock. known: the fingerprint was counted
// already or key is locked, so the failure changes nothing and no one
// need ask Redis again: a flood costs at most MaxFailures round trips per
// key and window.
func (l *Lockout) note(key, fingerprint string, now time.Time, onlyKnown bool) (count int, lockedUntil time.Time, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f != nil && (now.Before(f.windowEnd) || now.Before(f.lockedUntil)) {
		if _, repeat := f.fingerprints[fingerprint]; repeat || now.Before(f.lockedUntil) {
			return len(f.fingerprints), f.lockedUntil, true
		}
	} else if !onlyKnown {
		if f == nil && !l.makeRoom(now) {
			return 0, time.Time{}, false // full of locks: not tracked
		}
		f = &failures{windowEnd: now.Add(l.cfg.Window), fingerprints: map[string]struct{}{}}
		l.track(key, f)
	}
	if onlyKnown {
		return 0, time.Time{}, false
	}
	if len(f.fingerprints) < l.cfg.MaxFailures {
		f.fingerprints[fingerprint] = struct{}{}
	}
	return len(f.fingerprints), f.lockedUntil, false
}

// conclude adds a new failure to the shared count, if there is one, and
// locks key once the failures reach the maximum.
func (l *Lockout) conclude(ctx context.Context, key, fingerprint string, count int, now time.Time) (Failure, error) {
	var sharedUntil time.Time
	var err error
	if l.shared != nil {
		var n int
		n, sharedUntil, err = l.shared.AddFailure(ctx, key, fingerprint, l.cfg.Window)
		if err == nil && n > count {
			count = n
		}
	}
	until, decided := sharedUntil, false
	if count >= l.cfg.MaxFailures && !now.Before(until) {
		until, decided = now.Add(l.cfg.Duration), true
	}
	if !now.Before(until) {
		return Failure{}, err
	}
	// The lock is claimed here before it is shared: Learn, told of it by
	// Redis, then finds it set, and so does a failure recorded meanwhile.
	lockedNow := decided
	l.mu.Lock()
	if f := l.keys[key]; f != nil {
		lockedNow = decided && !now.Before(f.lockedUntil) // not set meanwhile by another failure
		if f.lockedUntil.Before(until) {
			f.lockedUntil = until
			l.queue.push(key, f.over())
		}
	}
	l.mu.Unlock()
	if lockedNow && l.shared != nil && err == nil {
		err = l.shared.Lock(ctx, key, until)
	}
	return Failure{Until: until, Locked: true, LockedNow: lockedNow}, err
}

// Learn records a lock another replica set (announced through Redis), so
// this replica refuses key without waiting for a failure of its own.
func (l *Lockout) Learn(key string, until, now time.Time) {
	if !now.Before(until) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.keys[key]
	if f == nil {
		if !l.makeRoom(now) {
			return
		}
		f = &failures{windowEnd: now, fingerprints: map[string]struct{}{}}
		l.track(key, f)
	}
	if f.lockedUntil.Before(until) {
		f.lockedUntil = until
		l.queue.push(key, f.over())
	}
}

// track keeps f as key's; with the lock held.
func (l *Lockout) track(key string, f *failures) {
	l.keys[key] = f
	l.queue.push(key, f.over())
	l.queue.compact(len(l.keys), func(it expiryItem) bool { return !l.stale(it) })
}

// makeRoom forgets keys whose window and lock are over and, if the table
// is still full, the one whose window ends soonest, unless it is locked
// (an attacker filling the table must not lift a lock): it reports false
// when the first few it looks at are all locked. With the lock held;
// O(log n) a key: it scanned the whole table for each new key once full
// (3 ms at 100,000 keys, found by a review), and dropped an arbitrary
// entry, a lock as likely as not.
func (l *Lockout) makeRoom(now time.Time) bool {
	at := now.UnixNano()
	l.queue.expire(at, l.stale, l.forget)
	if len(l.keys) < l.cfg.MaxTracked {
		return true
	}
	var locked [8]expiryItem
	n := 0
	defer func() {
		for _, it := range locked[:n] {
			l.queue.push(it.key, it.at)
		}
	}()
	for l.queue.len() > 0 && n < len(locked) {
		it := l.queue.pop()
		switch {
		case l.stale(it):
		case now.Before(l.keys[it.key].lockedUntil):
			locked[n] = it
			n++
		default:
			delete(l.keys, it.key)
			return true
		}
	}
	return false
}

// stale reports a queue item whose key has left or changed its end since.
func (l *Lockout) stale(it expiryItem) bool {
	f := l.keys[it.key]
	return f == nil || f.over() != it.at
}

// forget deletes the key of a popped item, unless it is stale.
func (l *Lockout) forget(it expiryItem) {
	if !l.stale(it) {
		delete(l.keys, it.key)
	}
}
