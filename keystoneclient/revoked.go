package keystoneclient

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
)

const (
	// RecheckHold is how long after a backend's 401 made Client ask
	// Keystone about an access key's token it does not ask again about
	// that key.
	RecheckHold = time.Minute
	// recheckRetry is the hold after a check that could not get an
	// answer: soon enough that a revoked token does not outlive a short
	// Keystone hiccup by a minute.
	recheckRetry = 5 * time.Second
	// maxRechecks bounds the checks under way: after a Fernet key
	// rotation every active key's token fails at once, and the checks
	// must not crowd out the exchanges that follow them (found by a
	// review). A 401 that finds none free starts no check; a later one
	// may.
	maxRechecks = 4
	// maxHeld bounds the access keys whose recent check is remembered;
	// past it, backend 401s start no check until older ones expire.
	maxHeld = 1 << 16
	// revocationGrain: Keystone revokes every token issued up to a
	// revocation event's second, not instant, so for up to a second after
	// a password change, ec2tokens hands out tokens that are revoked
	// already (measured on Keystone 22). An exchange this soon after a
	// check dropped a key's token validates the new one, and if it is
	// revoked, waits this long and exchanges again.
	revocationGrain = time.Second
)

// BackendRejected is told that a backend answered 401 to a request sent
// with id, the cached identity of accessKey. Keystone may have revoked the
// token before it expires (the user's password changed, the user disabled
// or removed from the project, Fernet keys rotated past it): every request
// would then fail until the token's renewal, an hour or more. Client asks
// Keystone, in the background, whether the token is still valid; if not,
// it drops the token from the shared store if that holds the same one,
// then here, so that the next request exchanges again. A backend may
// answer 401 for its own reasons too (a policy): a key is checked at most
// once per RecheckHold. It reports whether it started a check; it never
// waits.
func (c *Client) BackendRejected(accessKey string, id *Identity) bool {
	if id == nil || id.token == "" {
		return false
	}
	chk, fresh := c.held.take(accessKey, id.token, c.cfg.Now())
	return fresh && c.startCheck(accessKey, id, chk)
}

// Replaced is BackendRejected for a caller that can send the request
// again: it waits for the check (its own, or one of the same token under
// way or done lately) and reports whether Keystone said id's token is
// revoked, so that it was dropped. Only Keystone's word counts: a token
// merely replaced meanwhile (renewed) may have been refused for another
// reason, after the backend acted. The wait is bounded by the client's
// timeouts, or ctx.
func (c *Client) Replaced(ctx context.Context, accessKey string, id *Identity) bool {
	if id == nil || id.token == "" {
		return false
	}
	chk := c.waitCheck(ctx, accessKey, id)
	if chk == nil || !chk.dropped {
		return false
	}
	// A token renewed before the revocation, which the drop left in place,
	// is revoked too (found by a review): the request would be sent again
	// with it, and refused again. It is checked as well; valid or dropped,
	// the request may go again.
	if chk.survivor != nil {
		c.waitCheck(ctx, accessKey, chk.survivor)
	}
	return true
}

// waitCheck waits for the check of id's token (started now, or under way
// or done lately) and returns it, done; nil if there is none to wait for.
func (c *Client) waitCheck(ctx context.Context, accessKey string, id *Identity) *check {
	chk, fresh := c.held.take(accessKey, id.token, c.cfg.Now())
	if chk == nil || fresh && !c.startCheck(accessKey, id, chk) {
		return nil
	}
	select {
	case <-chk.done:
		return chk
	case <-ctx.Done():
		return nil
	}
}

// startCheck runs chk, the check of id's token just taken for accessKey,
// on a goroutine (one waiting for it may give up; the others may not), if
// a slot is free; it reports whether it started it.
func (c *Client) startCheck(accessKey string, id *Identity, chk *check) bool {
	select {
	case c.rechecks <- struct{}{}:
	default:
		c.held.shorten(accessKey, c.cfg.Now()) // none started: a later 401 may
		close(chk.done)
		return false
	}
	go func() {
		defer func() { <-c.rechecks }()
		chk.dropped = c.recheck(accessKey, id, chk)
		close(chk.done)
	}()
	return true
}

// recheck asks Keystone whether id's token is still valid and drops it if
// Keystone says no; any failure to ask keeps it, and lets the key be
// checked again after recheckRetry. It reports whether it dropped it.
func (c *Client) recheck(accessKey string, id *Identity, chk *check) (dropped bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.Timeout) // service token, then validation
	defer cancel()
	start := time.Now()
	verdict := c.validate(ctx, id)
	if verdict == validationError {
		// Before the metric, so that whoever sees it sees the hold too (a
		// test that advanced its clock on the metric found the hold
		// shortened from the later time).
		c.held.shorten(accessKey, c.cfg.Now().Add(recheckRetry))
	}
	if verdict != validationRejected {
		c.cfg.Observe("validate", verdict, time.Since(start))
		return false
	}
	chk.droppedAt.Store(c.cfg.Now().UnixNano()) // before the drop: the exchange after it reads it
	// The shared copy first: a request between a local drop and this
	// would read it back from the store and keep it for its lifetime
	// (found by a review).
	c.unshare(accessKey, id)
	c.tokens.InvalidateIf(accessKey, func(cur *Identity) bool { return cur.token == id.token })
	if cur, ok := c.tokens.PeekString(accessKey); ok && cur.token != id.token {
		chk.survivor = cur // obtained before this drop: maybe before the revocation
	}
	c.cfg.Observe("validate", validationRejected, time.Since(start))
	return true
}

// validate asks Keystone about id's token; its verdict is also the
// validate metric's result.
func (c *Client) validate(ctx context.Context, id *Identity) string {
	subject := id.Token()
	status, err := c.withServiceToken(ctx, func(svc string) (int, error) {
		return c.getStatus(ctx, c.base+"/auth/tokens?nocatalog", svc, subject)
	})
	switch {
	case err == nil && status == http.StatusOK:
		return validationOK
	case err == nil && status == http.StatusNotFound: // revoked or expired
		return validationRejected
	}
	return validationError // a 401 or 403 is about the service account, not the token
}

const (
	validationOK       = "ok"
	validationRejected = "rejected"
	validationError    = "error"
)

// unshare deletes id's token from the shared store if it holds that one;
// another replica's newer token is left alone, even one shared meanwhile.
func (c *Client) unshare(accessKey string, id *Identity) {
	if c.cfg.Shared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	_, err := c.cfg.Shared.DeleteTokenIf(ctx, accessKey, func(blob []byte) bool {
		var shared Identity
		return json.Unmarshal(blob, &shared) == nil && shared.token == id.token
	})
	if err != nil {
		c.cfg.SharedObserve("store_error")
	}
}

// holds remembers, for each access key checked lately, until when it is
// not to be checked again, and its last check.
type holds struct {
	mu        sync.Mutex
	keys      map[string]hold
	nextSweep time.Time
}

type hold struct {
	until time.Time
	check *check
	// dropped is the check before, which dropped its token: requests
	// refused with that token meanwhile still learn so.
	dropped *check
}

// check is one token check; dropped is set before done is closed.
type check struct {
	token     string
	done      chan struct{}
	dropped   bool
	droppedAt atomic.Int64 // Unix ns, once Keystone said the token is revoked
	survivor  *Identity    // a newer token the drop left cached, set before done is closed
}

// take returns the check to wait for about token: a new one, fresh, to
// start (the key is then held for RecheckHold), if the key is free or its
// last check dropped another token; the key's last check, or the one
// before that dropped its token, if that is of the same token; or nil if
// the key is held for another token, or too many keys are held.
func (h *holds) take(key, token string, now time.Time) (chk *check, fresh bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, held := h.keys[key]
	held = held && now.Before(k.until)
	if held {
		switch {
		case k.check.token == token:
			return k.check, false
		case k.dropped != nil && k.dropped.token == token:
			return k.dropped, false
		case !k.check.finished() || !k.check.dropped:
			return nil, false
		} // a newer token than the one dropped: it may be revoked too
	}
	if h.keys == nil {
		h.keys = make(map[string]hold)
	}
	if _, ok := h.keys[key]; !ok && len(h.keys) >= maxHeld {
		// Swept at most once a second: a backend answering 401 to every
		// key made each 401 walk the whole map (found by a review).
		if now.Before(h.nextSweep) {
			return nil, false
		}
		h.nextSweep = now.Add(time.Second)
		for k, held := range h.keys {
			if !now.Before(held.until) {
				delete(h.keys, k)
			}
		}
		if len(h.keys) >= maxHeld {
			return nil, false
		}
	}
	chk = &check{token: token, done: make(chan struct{})}
	next := hold{until: now.Add(RecheckHold), check: chk}
	if held {
		next.dropped = k.check // finished, and dropped its token (above)
	}
	h.keys[key] = next
	return chk, true
}

func (c *check) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// droppedSince reports whether a check dropped key's token at since or
// later.
func (h *holds) droppedSince(key string, since time.Time) bool {
	h.mu.Lock()
	k, ok := h.keys[key]
	h.mu.Unlock()
	return ok && k.check.droppedAt.Load() >= since.UnixNano()
}

// revokedAlready reports whether id, a token just obtained for accessKey
// (exchanged, or read from the shared store), is revoked already: only
// asked within revocationGrain of a check that dropped the key's token,
// when Keystone may have revoked tokens issued up to this very second.
func (c *Client) revokedAlready(ctx context.Context, accessKey string, id *Identity) bool {
	if !c.held.droppedSince(accessKey, c.cfg.Now().Add(-revocationGrain)) {
		return false
	}
	start := time.Now()
	verdict := c.validate(ctx, id) // an error: unknown, the backend will say
	c.cfg.Observe("validate", verdict, time.Since(start))
	return verdict == validationRejected
}

// afterRevocation checks id, just exchanged for accessKey (see
// revokedAlready), and if it is revoked already, exchanges again
// revocationGrain later. It has a budget of its own beyond the load's,
// which covers the first exchange: a short keystone.timeout must not turn
// every exchange after a revocation into a failure (found by a review).
func (c *Client) afterRevocation(ctx context.Context, accessKey string, key *sigv2.Key, id *Identity) (*Identity, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*c.cfg.Timeout+revocationGrain) // each call with a service token renewal
	defer cancel()
	if !c.revokedAlready(ctx, accessKey, id) {
		return id, nil
	}
	select {
	case <-time.After(revocationGrain):
	case <-ctx.Done():
		return nil, errorf(ErrUnavailable, "Keystone revoked the token it had just issued (a revocation within the same second), and there was no time left to ask again")
	}
	return c.exchange(ctx, accessKey, key)
}

// shorten makes key's hold end at until (now: free it).
func (h *holds) shorten(key string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if k, ok := h.keys[key]; ok {
		k.until = until
		h.keys[key] = k
	}
}
