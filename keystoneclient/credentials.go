package keystoneclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// EC2Credential is an EC2 credential as Keystone stores it (type ec2, the
// blob decoded).
type EC2Credential struct {
	ID, UserID, ProjectID string
	Access, Secret        string
	TrustID, AppCredID    string
}

// ListEC2Credentials returns every EC2 credential in Keystone (GET
// /v3/credentials?type=ec2), or an error: never part of them. The client's
// user must hold the admin role: Keystone answers anyone else with their
// own credentials only, not a refusal.
func (c *Client) ListEC2Credentials(ctx context.Context) ([]EC2Credential, error) {
	svc, err := c.serviceToken(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(svc.roles, isAdminRole) {
		return nil, errorf(ErrNotPermitted, "%s has no admin role in project %s (its roles: %s): Keystone would list only its own credentials; use an admin account",
			c.account(), c.project(), strings.Join(svc.roles, ", "))
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/credentials?type=ec2", nil)
	if err != nil {
		return nil, errorf(ErrUnavailable, "%v", err)
	}
	req.Header.Set("X-Auth-Token", svc.token)
	resp, err := c.http.Do(req)
	if err != nil {
		c.cfg.Observe("credentials", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "GET /v3/credentials: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, errorf(ErrUnavailable, "GET /v3/credentials: %v", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden, http.StatusUnauthorized:
		c.cfg.Observe("credentials", "rejected", time.Since(start))
		return nil, errorf(ErrNotPermitted, "%s may not list credentials (%d: %s); use an admin account", c.account(), resp.StatusCode, keystoneMessage(data))
	default:
		c.cfg.Observe("credentials", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "GET /v3/credentials answered %d: %s", resp.StatusCode, keystoneMessage(data))
	}
	var body struct {
		Truncated   bool `json:"truncated"`
		Credentials *[]struct {
			ID        string `json:"id"`
			UserID    string `json:"user_id"`
			ProjectID string `json:"project_id"`
			Type      string `json:"type"`
			Blob      string `json:"blob"`
		} `json:"credentials"`
	}
	// A partial list must be an error: sync deletes what it does not see.
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, errorf(ErrUnavailable, "GET /v3/credentials: unparsable answer: %v", err)
	}
	switch {
	case body.Credentials == nil:
		c.cfg.Observe("credentials", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "GET /v3/credentials: the answer (%d bytes) has no credentials list", len(data))
	case body.Truncated:
		c.cfg.Observe("credentials", "error", time.Since(start))
		return nil, errorf(ErrUnavailable, "GET /v3/credentials: Keystone truncated the list at %d credentials (its list_limit, in [DEFAULT] or [credential] of keystone.conf): raise it above the number of credentials", len(*body.Credentials))
	}
	c.cfg.Observe("credentials", "ok", time.Since(start))
	out := make([]EC2Credential, 0, len(*body.Credentials))
	for _, cr := range *body.Credentials {
		if cr.Type != "ec2" {
			continue
		}
		var blob struct {
			Access    string `json:"access"`
			Secret    string `json:"secret"`
			TrustID   string `json:"trust_id"`
			AppCredID string `json:"app_cred_id"`
		}
		if err := json.Unmarshal([]byte(cr.Blob), &blob); err != nil || blob.Access == "" || blob.Secret == "" {
			continue // not an EC2 blob we can use; Keystone cannot use it either
		}
		out = append(out, EC2Credential{ID: cr.ID, UserID: cr.UserID, ProjectID: cr.ProjectID,
			Access: blob.Access, Secret: blob.Secret, TrustID: blob.TrustID, AppCredID: blob.AppCredID})
	}
	return out, nil
}

// isAdminRole is oslo.policy's "role:admin": role names compare without case.
func isAdminRole(name string) bool { return strings.EqualFold(name, "admin") }
