// Package keystoneclient trades verified EC2 requests for Keystone tokens:
// it keeps a service token (Keystone requires role service or admin on
// POST /v3/ec2tokens), signs its own ec2tokens request with the stored
// secret, parses the token, and caches it per access key until shortly
// before it expires.
package keystoneclient

import (
	"strings"
	"time"
)

// Identity is what a Keystone token says about its holder.
type Identity struct {
	Token     string // X-Subject-Token; never log it
	ExpiresAt time.Time

	UserID, UserName, UserDomainID, UserDomainName             string
	ProjectID, ProjectName, ProjectDomainID, ProjectDomainName string
	Roles                                                      []string
	// RolesHeader is Roles comma-joined, as X-Roles carries them.
	RolesHeader string

	// Set for trust-scoped tokens (OS-TRUST:trust).
	TrustID, TrustorID, TrusteeID string
	Impersonation                 bool
	// Set for application-credential tokens.
	AppCredID string
}

// tokenBody is the part of a Keystone v3 token response ec2proxy reads; the
// catalog is skipped.
type tokenBody struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"domain"`
		} `json:"user"`
		Project *struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"domain"`
		} `json:"project"`
		Roles []struct {
			Name string `json:"name"`
		} `json:"roles"`
		Trust *struct {
			ID          string `json:"id"`
			Impersonate bool   `json:"impersonation"`
			Trustor     struct {
				ID string `json:"id"`
			} `json:"trustor_user"`
			Trustee struct {
				ID string `json:"id"`
			} `json:"trustee_user"`
		} `json:"OS-TRUST:trust"`
		AppCred *struct {
			ID string `json:"id"`
		} `json:"application_credential"`
	} `json:"token"`
}

func (b *tokenBody) identity(token string) (*Identity, error) {
	t := &b.Token
	expires, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil {
		return nil, errorf(ErrUnavailable, "token expires_at %q: %v", t.ExpiresAt, err)
	}
	if t.User.ID == "" || t.Project == nil || t.Project.ID == "" {
		return nil, errorf(ErrUnavailable, "token lacks a user or a project scope")
	}
	id := &Identity{
		Token: token, ExpiresAt: expires,
		UserID: t.User.ID, UserName: t.User.Name, UserDomainID: t.User.Domain.ID, UserDomainName: t.User.Domain.Name,
		ProjectID: t.Project.ID, ProjectName: t.Project.Name, ProjectDomainID: t.Project.Domain.ID, ProjectDomainName: t.Project.Domain.Name,
	}
	for _, r := range t.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	id.RolesHeader = strings.Join(id.Roles, ",")
	if t.Trust != nil {
		id.TrustID, id.TrustorID, id.TrusteeID, id.Impersonation = t.Trust.ID, t.Trust.Trustor.ID, t.Trust.Trustee.ID, t.Trust.Impersonate
	}
	if t.AppCred != nil {
		id.AppCredID = t.AppCred.ID
	}
	return id, nil
}
