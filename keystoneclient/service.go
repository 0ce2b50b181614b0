package keystoneclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// serviceToken returns a valid service token, authenticating when there is
// none. A token past its renewal point is still used while one goroutine
// renews it in the background.
func (c *Client) serviceToken(ctx context.Context) (*serviceToken, error) {
	now := c.cfg.Now()
	if t := c.svc.Load(); t != nil && now.Before(t.expires) {
		if !now.Before(t.renew) && c.svcRefresh.CompareAndSwap(false, true) {
			go func() {
				defer c.svcRefresh.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
				defer cancel()
				_, _ = c.authenticate(ctx, t)
			}()
		}
		return t, nil
	}
	return c.authenticate(ctx, nil)
}

// serviceTokenValid asks Keystone whether t still is (a token may
// validate itself), at most every ten seconds. Only a 401 or 404 says no:
// on anything else t is kept.
func (c *Client) serviceTokenValid(ctx context.Context, t *serviceToken) bool {
	now := c.cfg.Now()
	if checked := t.checked.Load(); checked != 0 && now.Sub(time.Unix(0, checked)) < 10*time.Second {
		return true
	}
	status, err := c.getStatus(ctx, c.base+"/auth/tokens", t.token, t.token)
	if err == nil && (status == http.StatusUnauthorized || status == http.StatusNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	t.checked.Store(now.UnixNano())
	return true
}

// dropServiceToken forgets t if it is still the current token.
func (c *Client) dropServiceToken(t *serviceToken) { c.svc.CompareAndSwap(t, nil) }

// authenticate gets a new service token unless another goroutine already
// replaced stale (the token the caller saw; nil for none).
func (c *Client) authenticate(ctx context.Context, stale *serviceToken) (*serviceToken, error) {
	c.svcMu.Lock()
	defer c.svcMu.Unlock()
	if t := c.svc.Load(); t != nil && t != stale && c.cfg.Now().Before(t.renew) {
		return t, nil
	}
	t, err := c.serviceAuth(ctx)
	if err != nil {
		return nil, err
	}
	c.svc.Store(t)
	return t, nil
}

// byIDOrName names a domain by id if one is given, as keystoneauth does.
func byIDOrName(id, name string) map[string]string {
	if id != "" {
		return map[string]string{"id": id}
	}
	return map[string]string{"name": name}
}

// authBody is the service account's POST /v3/auth/tokens body: its
// password and project, or its application credential (which is scoped
// to the project it was made in, and takes no scope).
func (c *Client) authBody() []byte {
	if c.cfg.ApplicationCredentialID != "" {
		body, _ := json.Marshal(map[string]any{"auth": map[string]any{"identity": map[string]any{
			"methods":                []string{"application_credential"},
			"application_credential": map[string]string{"id": c.cfg.ApplicationCredentialID, "secret": c.cfg.ApplicationCredentialSecret},
		}}})
		return body
	}
	project := map[string]any{"id": c.cfg.ProjectID}
	if c.cfg.ProjectID == "" {
		project = map[string]any{"name": c.cfg.ProjectName, "domain": byIDOrName(c.cfg.ProjectDomainID, c.cfg.ProjectDomainName)}
	}
	user := map[string]any{"id": c.cfg.UserID, "password": c.cfg.Password} // an id is unique: no domain
	if c.cfg.UserID == "" {
		user = map[string]any{"name": c.cfg.Username, "password": c.cfg.Password, "domain": byIDOrName(c.cfg.UserDomainID, c.cfg.UserDomainName)}
	}
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{
			"methods":  []string{"password"},
			"password": map[string]any{"user": user},
		},
		"scope": map[string]any{"project": project},
	}})
	return body
}

func (c *Client) serviceAuth(ctx context.Context) (*serviceToken, error) {
	start := time.Now()
	body := c.authBody()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/auth/tokens?nocatalog", bytes.NewReader(body))
	if err != nil {
		return nil, errorf(ErrUnavailable, "%v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.cfg.Observe("auth", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "service authentication: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		c.cfg.Observe("auth", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "service authentication as %s answered %d: %s", c.account(), resp.StatusCode, keystoneMessage(data))
	}
	var tb struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			IssuedAt  string `json:"issued_at"`
			Roles     []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	token := resp.Header.Get("X-Subject-Token")
	jerr := json.Unmarshal(data, &tb)
	expires, perr := time.Parse(time.RFC3339Nano, tb.Token.ExpiresAt)
	if token == "" || jerr != nil || perr != nil {
		c.cfg.Observe("auth", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "service authentication: unparsable token")
	}
	c.cfg.Observe("auth", "ok", time.Since(start))
	now := c.cfg.Now()
	expires = localExpiry(expires, tb.Token.IssuedAt, now)
	lifetime := expires.Sub(now)
	t := &serviceToken{token: token, obtained: now, expires: expires, renew: now.Add(lifetime - min(c.cfg.TokenMargin, lifetime/2))}
	for _, r := range tb.Token.Roles {
		t.roles = append(t.roles, r.Name)
	}
	return t, nil
}

// Ready reports whether Keystone can be used now: a service token is held
// or can be obtained, and Keystone answers. A held token alone said ready
// for up to 55 minutes after Keystone went away (found by a review).
func (c *Client) Ready(ctx context.Context) error {
	held := c.svc.Load()
	if _, err := c.serviceToken(ctx); err != nil || held == nil {
		return err // nil: Keystone just gave the token
	}
	status, err := c.getStatus(ctx, c.base, "", "")
	switch {
	case err != nil:
		return errorf(ErrUnavailable, "Keystone does not answer: %v", err)
	case status >= 500:
		return errorf(ErrUnavailable, "Keystone answered GET %s with %d", c.base, status)
	}
	return nil
}

// getStatus sends GET url, with the caller's token and the subject token
// (a token being validated) if set, and returns the status; the body is
// read and dropped.
func (c *Client) getStatus(ctx context.Context, url, token, subject string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if subject != "" {
		req.Header.Set("X-Subject-Token", subject)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}
