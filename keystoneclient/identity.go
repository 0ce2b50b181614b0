// Package keystoneclient trades verified EC2 requests for Keystone tokens:
// it keeps a service token (Keystone requires role service or admin on
// POST /v3/ec2tokens), signs its own ec2tokens request with the stored
// secret, parses the token, and caches it per access key until shortly
// before it expires.
package keystoneclient

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Identity is what a Keystone token says about its holder. Identities are
// cached and shared between requests, and their strings and Roles between
// identities (see intern): treat an Identity as read-only.
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
	intern(id)
	return id, nil
}

// interned holds strings and role lists that cached identities share:
// 100,000 tokens typically name far fewer users, projects, domains and
// sets of roles, and each token's copies of them would cost as much as the
// token itself. It is bounded (it holds what Keystone and other replicas
// sent) and starts over when full, which only costs sharing.
var interned struct {
	mu    sync.Mutex
	strs  map[string]string
	roles map[string][]string // by RolesHeader
}

const (
	maxInternedStrings = 1 << 14
	maxInternedRoles   = 1 << 10
)

// intern replaces id's strings (but the token) and Roles with shared
// equal ones. Roles must then not be modified: nothing does, identities
// are shared between requests anyway.
func intern(id *Identity) {
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if interned.strs == nil || len(interned.strs) >= maxInternedStrings {
		interned.strs = make(map[string]string)
	}
	for _, f := range [...]*string{
		&id.UserID, &id.UserName, &id.UserDomainID, &id.UserDomainName,
		&id.ProjectID, &id.ProjectName, &id.ProjectDomainID, &id.ProjectDomainName,
		&id.TrustID, &id.TrustorID, &id.TrusteeID, &id.AppCredID,
	} {
		*f = internString(*f)
	}
	if len(id.Roles) == 0 {
		return
	}
	header := strings.Join(id.Roles, ",")
	// slices.Equal: role names may contain commas, so one header may come
	// from different lists.
	if roles, ok := interned.roles[header]; ok && header == id.RolesHeader && slices.Equal(roles, id.Roles) {
		id.Roles, id.RolesHeader = roles, internString(header)
		return
	}
	if interned.roles == nil || len(interned.roles) >= maxInternedRoles {
		interned.roles = make(map[string][]string)
	}
	roles := make([]string, len(id.Roles))
	for i, r := range id.Roles {
		roles[i] = internString(r)
	}
	id.Roles = roles
	if header == id.RolesHeader {
		id.RolesHeader = internString(header)
		interned.roles[id.RolesHeader] = roles
	}
}

// maxInternedLen: longer strings are not shared (none of Keystone's ids
// and names is that long), so that the table stays small whatever it is
// sent.
const maxInternedLen = 255

// internString returns the shared copy of s; with interned.mu held.
func internString(s string) string {
	if s == "" || len(s) > maxInternedLen {
		return s
	}
	if shared, ok := interned.strs[s]; ok {
		return shared
	}
	interned.strs[s] = s
	return s
}
