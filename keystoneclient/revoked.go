package keystoneclient

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
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
)

// BackendRejected is told that a backend answered 401 to a request sent
// with id, the cached identity of accessKey. Keystone may have revoked the
// token before it expires (the user disabled or removed from the project,
// Fernet keys rotated past it): every request would then fail until the
// token's renewal, an hour or more. Client asks Keystone, in the
// background, whether the token is still valid; if not, it drops the token
// from the shared store if that holds the same one, then here, so that the
// next request exchanges again. A backend may answer 401 for its own
// reasons too (a policy): a key is checked at most once per RecheckHold.
// It reports whether it started a check; it never waits.
func (c *Client) BackendRejected(accessKey string, id *Identity) bool {
	now := c.cfg.Now()
	if id == nil || id.token == "" || !c.held.take(accessKey, now) {
		return false
	}
	select {
	case c.rechecks <- struct{}{}:
	default:
		c.held.shorten(accessKey, now) // none started: a later 401 may
		return false
	}
	go func() {
		defer func() { <-c.rechecks }()
		if !c.recheck(accessKey, id) {
			c.held.shorten(accessKey, c.cfg.Now().Add(recheckRetry))
		}
	}()
	return true
}

// recheck asks Keystone whether id's token is still valid and drops it if
// Keystone says no; any failure to ask keeps it. It reports whether
// Keystone answered.
func (c *Client) recheck(accessKey string, id *Identity) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.Timeout) // service token, then validation
	defer cancel()
	start := time.Now()
	subject := id.Token()
	status, err := c.withServiceToken(ctx, func(svc string) (int, error) {
		return c.getStatus(ctx, c.base+"/auth/tokens?nocatalog", svc, subject)
	})
	switch {
	case err != nil || status != http.StatusOK && status != http.StatusNotFound:
		// A 401 or 403 here is about the service account, not the token.
		c.cfg.Observe("validate", "error", time.Since(start))
		return false
	case status == http.StatusOK:
		c.cfg.Observe("validate", "ok", time.Since(start))
		return true
	}
	// The shared copy first: a request between a local drop and this
	// would read it back from the store and keep it for its lifetime
	// (found by a review).
	c.unshare(accessKey, id)
	c.tokens.InvalidateIf(accessKey, func(cur *Identity) bool { return cur.token == id.token })
	c.cfg.Observe("validate", "rejected", time.Since(start))
	return true
}

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

// holds remembers until when each access key is not to be checked again.
type holds struct {
	mu        sync.Mutex
	until     map[string]time.Time
	nextSweep time.Time
}

// take holds key for RecheckHold from now if it is free, and reports
// whether it was.
func (h *holds) take(key string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until, ok := h.until[key]; ok && now.Before(until) {
		return false
	}
	if h.until == nil {
		h.until = make(map[string]time.Time)
	}
	if len(h.until) >= maxHeld {
		// Swept at most once a second: a backend answering 401 to every
		// key made each 401 walk the whole map (found by a review).
		if now.Before(h.nextSweep) {
			return false
		}
		h.nextSweep = now.Add(time.Second)
		for k, until := range h.until {
			if !now.Before(until) {
				delete(h.until, k)
			}
		}
		if len(h.until) >= maxHeld {
			return false
		}
	}
	h.until[key] = now.Add(RecheckHold)
	return true
}

// shorten makes key's hold end at until (now: free it).
func (h *holds) shorten(key string, until time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.until[key]; ok {
		h.until[key] = until
	}
}
