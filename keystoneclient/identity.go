// Package keystoneclient trades verified EC2 requests for Keystone tokens:
// it keeps a service token (Keystone requires role service or admin on
// POST /v3/ec2tokens), signs its own ec2tokens request with the stored
// secret, parses the token, and caches it per access key until shortly
// before it expires.
package keystoneclient

import (
	"encoding/base64"
	"encoding/json"
	"hash/maphash"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Identity is what a Keystone token says about its holder: the token, and
// the Subject it speaks for. Identities are cached and shared between
// requests, and their Subjects between identities (see intern): treat an
// Identity and its Subject as read-only.
//
// The token and its expiry are kept compactly (32 bytes, and 144 for a
// Fernet token's text rather than 192): the token cache holds one Identity
// per access key, 100,000 and more.
type Identity struct {
	token   string // packed, see packToken; never log it
	expires int64  // see unixNano
	*Subject
}

// NewIdentity returns the identity of token (X-Subject-Token), which
// expires at expiresAt, for s.
func NewIdentity(token string, expiresAt time.Time, s *Subject) *Identity {
	return &Identity{token: packToken(token), expires: unixNano(expiresAt), Subject: s}
}

// Token is the token (X-Subject-Token); never log it.
func (id *Identity) Token() string { return string(id.AppendToken(nil)) }

// AppendToken appends the token to dst, allocating nothing when dst has
// room: it is for each forwarded request's X-Auth-Token.
func (id *Identity) AppendToken(dst []byte) []byte { return appendToken(dst, id.token) }

func appendToken(dst []byte, p string) []byte {
	if p == "" {
		return dst
	}
	n := int(p[len(p)-1])
	if n == rawToken {
		return append(dst, p[:len(p)-1]...)
	}
	groups, rest := p[:len(p)-1-n], p[len(p)-1-n:len(p)-1]
	// Read only: the encoder just reads groups' bytes.
	dst = base64.RawURLEncoding.AppendEncode(dst, unsafe.Slice(unsafe.StringData(groups), len(groups)))
	return append(dst, rest...)
}

// ExpiresAt is when the token expires.
func (id *Identity) ExpiresAt() time.Time {
	if id.expires == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, id.expires).UTC()
}

// rawToken ends a packed token kept as it was given.
const rawToken = 0xff

// packToken returns tok as Identity keeps it. Keystone's tokens (Fernet,
// UUID) are base64url text: its whole groups of four characters are kept as
// the three bytes they encode, the last 0-3 characters as they are, then
// one byte saying how many those are. A 183-character Fernet token thus
// takes 139 bytes. Any other token is kept as it is, then rawToken.
func packToken(tok string) string {
	if tok == "" {
		return ""
	}
	q := len(tok) &^ 3
	rest := len(tok) - q
	// Scratch on the stack for a Fernet token: only the packed string is
	// allocated (read only: the decoder just reads tok).
	var scratch, check [256]byte
	b := scratch[:0]
	if n := q/4*3 + rest + 1; n > len(scratch) {
		b = make([]byte, 0, n)
	}
	b = b[:q/4*3]
	if _, err := base64.RawURLEncoding.Decode(b, unsafe.Slice(unsafe.StringData(tok), q)); err == nil {
		b = append(append(b, tok[q:]...), byte(rest))
		// The decoder skips newlines, and the tail is kept unchecked:
		// pack only what comes back the same.
		if string(appendToken(check[:0], unsafe.String(&b[0], len(b)))) == tok {
			return string(b)
		}
	}
	return tok + "\xff" // rawToken
}

// unixNano is t in Unix nanoseconds, clamped to what int64 holds (years
// 1678-2262), the zero time as math.MinInt64.
func unixNano(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// identityJSON is how an Identity is shared with other replicas (through
// Redis): the form Identity had when its fields were exported, which
// replicas of every version read.
type identityJSON struct {
	Token     string
	ExpiresAt time.Time
	*Subject
}

func (id *Identity) MarshalJSON() ([]byte, error) { return id.marshal() }

// marshal is MarshalJSON without json.Marshal's checking copy of its result.
func (id *Identity) marshal() ([]byte, error) {
	return json.Marshal(id.forJSON())
}

// encode writes the JSON of marshal to w (and a newline, which
// UnmarshalJSON ignores).
func (id *Identity) encode(w io.Writer) error {
	return json.NewEncoder(w).Encode(id.forJSON())
}

func (id *Identity) forJSON() identityJSON {
	return identityJSON{Token: id.Token(), ExpiresAt: id.ExpiresAt(), Subject: id.Subject}
}

func (id *Identity) UnmarshalJSON(data []byte) error {
	var j identityJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*id = Identity{token: packToken(j.Token), expires: unixNano(j.ExpiresAt), Subject: j.Subject}
	return nil
}

// Subject is what the tokens of one user, project, role list and trust all
// say alike. It is apart from the token so that the identities of 100,000
// access keys, which typically name far fewer users and projects, share one
// copy of it rather than each holding 240 bytes of it (the token cache's
// largest cost per key, after the token).
type Subject struct {
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
	// NotAdminProject: the token says is_admin_project: false (Keystone
	// with [resource] admin_project_name set, for any other project).
	// keystonemiddleware then sends X-Is-Admin-Project: False, and True
	// when the token says true or nothing; oslo.context reads a missing
	// header as True. The zero value is that default.
	NotAdminProject bool `json:",omitempty"` // omitted when false: the JSON replicas share stays as it was
}

// tokenBody is the part of a Keystone v3 token response ec2proxy reads; the
// catalog is skipped.
type tokenBody struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		IssuedAt  string `json:"issued_at"`
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
		IsAdminProject *bool `json:"is_admin_project"`
	} `json:"token"`
}

// identity is the token's identity, received at now.
func (b *tokenBody) identity(token string, now time.Time) (*Identity, error) {
	t := &b.Token
	expires, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil {
		return nil, errorf(ErrUnavailable, "token expires_at %q: %v", t.ExpiresAt, err)
	}
	expires = localExpiry(expires, t.IssuedAt, now)
	// An Identity keeps the expiry in Unix nanoseconds: years 1678-2262.
	// Keystone sends nothing else; outside them the expiry would be lost.
	if n := unixNano(expires); n == math.MinInt64 || n == math.MaxInt64 {
		return nil, errorf(ErrUnavailable, "token expires_at %q is out of range", t.ExpiresAt)
	}
	if t.User.ID == "" || t.Project == nil || t.Project.ID == "" {
		return nil, errorf(ErrUnavailable, "token lacks a user or a project scope")
	}
	s := &Subject{
		UserID: t.User.ID, UserName: t.User.Name, UserDomainID: t.User.Domain.ID, UserDomainName: t.User.Domain.Name,
		ProjectID: t.Project.ID, ProjectName: t.Project.Name, ProjectDomainID: t.Project.Domain.ID, ProjectDomainName: t.Project.Domain.Name,
	}
	for _, r := range t.Roles {
		s.Roles = append(s.Roles, r.Name)
	}
	s.RolesHeader = strings.Join(s.Roles, ",")
	if t.Trust != nil {
		s.TrustID, s.TrustorID, s.TrusteeID, s.Impersonation = t.Trust.ID, t.Trust.Trustor.ID, t.Trust.Trustee.ID, t.Trust.Impersonate
	}
	if t.AppCred != nil {
		s.AppCredID = t.AppCred.ID
	}
	s.NotAdminProject = t.IsAdminProject != nil && !*t.IsAdminProject
	return NewIdentity(token, expires, intern(s)), nil
}

// localExpiry is when a token that expires at expires by Keystone's clock,
// issued at issuedAt by it and received at now, expires by ours: its
// lifetime from now, or expires if that is earlier. Keystone's clock
// running ahead of ours made a token it holds expired look fresh (found
// by a review); one running behind only renews early. Without issued_at,
// expires as it is.
func localExpiry(expires time.Time, issuedAt string, now time.Time) time.Time {
	issued, err := time.Parse(time.RFC3339Nano, issuedAt)
	if err != nil || !expires.After(issued) {
		return expires
	}
	if local := now.Add(expires.Sub(issued)); local.Before(expires) {
		return local
	}
	return expires
}

// interned holds strings, role lists and subjects that cached identities
// share: 100,000 tokens typically name far fewer users, projects, domains
// and sets of roles, and each token's copies of them would cost more than
// the token itself. It is bounded (it holds what Keystone and other
// replicas sent) and starts over when full, which only costs sharing.
var interned struct {
	mu       sync.Mutex
	strs     map[string]string
	roles    map[string][]string // by RolesHeader
	subjects map[uint64]*Subject // by subjectHash; a collision is not shared
	seed     maphash.Seed
}

const (
	maxInternedStrings  = 1 << 14
	maxInternedRoles    = 1 << 10
	maxInternedSubjects = 1 << 14
)

// intern returns the shared Subject equal to s, or s itself with its
// strings and Roles replaced by shared equal ones (and shared from now on).
// Roles must then not be modified: nothing does, subjects are shared
// between requests anyway.
func intern(s *Subject) *Subject {
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if interned.strs == nil || len(interned.strs) >= maxInternedStrings {
		interned.strs = make(map[string]string)
	}
	for _, f := range [...]*string{
		&s.UserID, &s.UserName, &s.UserDomainID, &s.UserDomainName,
		&s.ProjectID, &s.ProjectName, &s.ProjectDomainID, &s.ProjectDomainName,
		&s.TrustID, &s.TrustorID, &s.TrusteeID, &s.AppCredID,
	} {
		*f = internString(*f)
	}
	internRoles(s)

	if interned.subjects == nil || len(interned.subjects) >= maxInternedSubjects {
		if interned.subjects == nil {
			interned.seed = maphash.MakeSeed()
		}
		interned.subjects = make(map[uint64]*Subject)
	}
	h := subjectHash(s)
	switch shared, ok := interned.subjects[h]; {
	case !ok:
		interned.subjects[h] = s
	case shared.equal(s):
		return shared
	}
	return s
}

// internRoles replaces s.Roles and s.RolesHeader with shared equal ones;
// with interned.mu held.
func internRoles(s *Subject) {
	if len(s.Roles) == 0 {
		return
	}
	header := strings.Join(s.Roles, ",")
	// slices.Equal: role names may contain commas, so one header may come
	// from different lists.
	if roles, ok := interned.roles[header]; ok && header == s.RolesHeader && slices.Equal(roles, s.Roles) {
		s.Roles, s.RolesHeader = roles, internString(header)
		return
	}
	if interned.roles == nil || len(interned.roles) >= maxInternedRoles {
		interned.roles = make(map[string][]string)
	}
	roles := make([]string, len(s.Roles))
	for i, r := range s.Roles {
		roles[i] = internString(r)
	}
	s.Roles = roles
	if header == s.RolesHeader {
		s.RolesHeader = internString(header)
		interned.roles[s.RolesHeader] = roles
	}
}

// subjectHash hashes every field of s that equal compares; with
// interned.mu held.
func subjectHash(s *Subject) uint64 {
	var h maphash.Hash
	h.SetSeed(interned.seed)
	for _, f := range [...]string{
		s.UserID, s.UserName, s.UserDomainID, s.UserDomainName,
		s.ProjectID, s.ProjectName, s.ProjectDomainID, s.ProjectDomainName,
		s.RolesHeader, s.TrustID, s.TrustorID, s.TrusteeID, s.AppCredID,
	} {
		h.WriteString(f)
		h.WriteByte(0)
	}
	for _, r := range s.Roles {
		h.WriteString(r)
		h.WriteByte(0)
	}
	if s.Impersonation {
		h.WriteByte(1)
	}
	if s.NotAdminProject {
		h.WriteByte(2)
	}
	return h.Sum64()
}

func (s *Subject) equal(o *Subject) bool {
	return s.UserID == o.UserID && s.UserName == o.UserName && s.UserDomainID == o.UserDomainID &&
		s.UserDomainName == o.UserDomainName && s.ProjectID == o.ProjectID && s.ProjectName == o.ProjectName &&
		s.ProjectDomainID == o.ProjectDomainID && s.ProjectDomainName == o.ProjectDomainName &&
		slices.Equal(s.Roles, o.Roles) && s.RolesHeader == o.RolesHeader &&
		s.TrustID == o.TrustID && s.TrustorID == o.TrustorID && s.TrusteeID == o.TrusteeID &&
		s.Impersonation == o.Impersonation && s.AppCredID == o.AppCredID && s.NotAdminProject == o.NotAdminProject
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
