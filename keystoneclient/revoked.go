package keystoneclient

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// RecheckHold is how long after a backend's 401 made Client ask Keystone
// about an access key's token it does not ask again about that key.
const RecheckHold = time.Minute

// maxHeld bounds the access keys whose recent check is remembered; past
// it, backend 401s start no check until older ones are forgotten.
const maxHeld = 1 << 16

// BackendRejected is told that a backend answered 401 to a request sent
// with id, the cached identity of accessKey. Keystone may have revoked the
// token before it expires (the user disabled or removed from the project,
// Fernet keys rotated past it): every request would then fail until the
// token's renewal, an hour or more. Client asks Keystone, in the
// background, whether the token is still valid; if not, it drops the token
// here, and in the shared store if that holds the same one, so that the
// next request exchanges again. A backend may answer 401 for its own
// reasons too (a policy): a key is checked at most once per RecheckHold.
// It reports whether it started a check.
func (c *Client) BackendRejected(accessKey string, id *Identity) bool {
	if id == nil || id.token == "" || !c.held.hold(accessKey, c.cfg.Now()) {
		return false
	}
	go c.recheck(accessKey, id)
	return true
}

// recheck asks Keystone whether id's token is still valid and drops it if
// Keystone says no; any failure to ask keeps it.
func (c *Client) recheck(accessKey string, id *Identity) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.cfg.Timeout) // service token, then validation
	defer cancel()
	start := time.Now()
	select {
	case c.calls <- struct{}{}: // a Keystone call like an exchange: bounded with them
		defer func() { <-c.calls }()
	case <-ctx.Done():
		c.cfg.Observe("validate", "error", time.Since(start))
		return
	}
	subject := id.Token()
	status, err := c.withServiceToken(ctx, func(svc string) (int, error) {
		return c.getStatus(ctx, c.base+"/auth/tokens?nocatalog", svc, subject)
	})
	switch {
	case err != nil || status != http.StatusOK && status != http.StatusNotFound:
		c.cfg.Observe("validate", "error", time.Since(start))
		return
	case status == http.StatusOK:
		c.cfg.Observe("validate", "ok", time.Since(start))
		return
	}
	c.tokens.InvalidateIf(accessKey, func(cur *Identity) bool { return cur.token == id.token })
	c.unshare(ctx, accessKey, id)
	c.cfg.Observe("validate", "rejected", time.Since(start))
}

// unshare deletes id's token from the shared store if it holds that one;
// another replica's newer token is left alone.
func (c *Client) unshare(ctx context.Context, accessKey string, id *Identity) {
	if c.cfg.Shared == nil {
		return
	}
	blob, err := c.cfg.Shared.GetToken(ctx, accessKey)
	var shared Identity
	if err != nil || blob == nil || json.Unmarshal(blob, &shared) != nil || shared.token != id.token {
		return
	}
	if err := c.cfg.Shared.DeleteToken(ctx, accessKey); err != nil {
		c.cfg.SharedObserve("store_error")
	}
}

// holds remembers when each access key was last rechecked.
type holds struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// hold reports whether key may be checked at now, and if so holds it for
// RecheckHold.
func (h *holds) hold(key string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until, ok := h.until[key]; ok && now.Before(until) {
		return false
	}
	if h.until == nil {
		h.until = make(map[string]time.Time)
	}
	if len(h.until) >= maxHeld {
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
