package keystoneclient

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// Identities share equal strings, role lists and subjects, but never a
// list that only looks the same once joined.
func TestIdentitiesShareStrings(t *testing.T) {
	parse := func(roles ...string) *Identity {
		var tb tokenBody
		tb.Token.ExpiresAt = "2026-11-25T12:00:00.000000Z"
		tb.Token.User.ID, tb.Token.User.Domain.ID = strings.Clone("u1"), strings.Clone("default")
		tb.Token.Project = &struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"domain"`
		}{ID: strings.Clone("p1")}
		for _, r := range roles {
			tb.Token.Roles = append(tb.Token.Roles, struct {
				Name string `json:"name"`
			}{strings.Clone(r)})
		}
		id, err := tb.identity("tok", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	a, b := parse("member", "reader"), parse("member", "reader")
	if !same(a.UserID, b.UserID) || !same(a.ProjectID, b.ProjectID) || !same(a.UserDomainID, b.UserDomainID) ||
		!same(a.RolesHeader, b.RolesHeader) || &a.Roles[0] != &b.Roles[0] {
		t.Error("two identities of one user hold copies of its strings or roles")
	}
	if a.Subject != b.Subject {
		t.Error("two tokens of one user, project and role list hold copies of one Subject")
	}
	c := parse("member,reader")
	if c.Subject == a.Subject {
		t.Error("role lists [member reader] and [member,reader] share a Subject")
	}
	if c.RolesHeader != "member,reader" || len(c.Roles) != 1 || c.Roles[0] != "member,reader" {
		t.Errorf("role list [member,reader] became %q (%q)", c.Roles, c.RolesHeader)
	}
	if d := parse("member", "reader"); len(d.Roles) != 2 || d.Roles[1] != "reader" {
		t.Errorf("roles [member reader] became %q", d.Roles)
	}
}

// A token comes back exactly as Keystone sent it, whether it could be
// packed or not; a Fernet token is packed.
func TestTokenPacking(t *testing.T) {
	raw := make([]byte, 137)
	_, _ = rand.Read(raw)
	// bench/fakekeystone's shape: 183 characters, random trailing bits.
	fernet := "gAAAAA" + base64.RawURLEncoding.EncodeToString(raw)[:177]
	for _, tok := range []string{
		"", "a", "ab", "abc", "abcd", "abcde", "gAAAA-2", fernet, fernet[:182], fernet[:181], fernet[:180],
		"0123456789abcdef0123456789abcdef", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln", "ab\ncdefgh", "abcd\r\n", "abcd====", "a b c d", "\xff", "abc\xff",
	} {
		id := NewIdentity(tok, time.Time{}, &Subject{})
		if got := id.Token(); got != tok {
			t.Errorf("token %q came back as %q", tok, got)
		}
		if got := string(id.AppendToken([]byte("x:"))); got != "x:"+tok {
			t.Errorf("token %q appended as %q", tok, got)
		}
	}
	if id := NewIdentity(fernet, time.Time{}, &Subject{}); len(id.token) > 139 {
		t.Errorf("a %d-character Fernet token takes %d bytes, want 139", len(fernet), len(id.token))
	}
	id := NewIdentity(fernet, time.Time{}, &Subject{})
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = id.AppendToken(buf[:0]) }); n != 0 {
		t.Errorf("AppendToken: %v allocations, want 0", n)
	}
}

// An Identity's JSON, which replicas share through Redis, is what it was
// when Identity's fields were exported: replicas of either version read
// each other's.
func TestIdentityJSONUnchanged(t *testing.T) {
	type before struct {
		Token                                                      string
		ExpiresAt                                                  time.Time
		UserID, UserName, UserDomainID, UserDomainName             string
		ProjectID, ProjectName, ProjectDomainID, ProjectDomainName string
		Roles                                                      []string
		RolesHeader                                                string
		TrustID, TrustorID, TrusteeID                              string
		Impersonation                                              bool
		AppCredID                                                  string
	}
	expires := time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)
	old := before{Token: "gAAAAABtoken_-x", ExpiresAt: expires, UserID: "u", UserName: "alice", UserDomainID: "d",
		ProjectID: "p", ProjectName: "proj", ProjectDomainID: "d", Roles: []string{"member", "reader"},
		RolesHeader: "member,reader", TrustID: "tr", TrustorID: "tor", TrusteeID: "tee", Impersonation: true, AppCredID: "ac"}
	s := &Subject{UserID: "u", UserName: "alice", UserDomainID: "d", ProjectID: "p", ProjectName: "proj", ProjectDomainID: "d",
		Roles: []string{"member", "reader"}, RolesHeader: "member,reader", TrustID: "tr", TrustorID: "tor", TrusteeID: "tee",
		Impersonation: true, AppCredID: "ac"}
	want, _ := json.Marshal(old)
	got, err := json.Marshal(NewIdentity(old.Token, expires, s))
	if err != nil || string(got) != string(want) {
		t.Fatalf("JSON %s (%v), want %s", got, err, want)
	}
	var id Identity
	if err := json.Unmarshal(want, &id); err != nil {
		t.Fatal(err)
	}
	if id.Token() != old.Token || !id.ExpiresAt().Equal(expires) || id.Subject == nil || !id.Subject.equal(s) {
		t.Errorf("read back as %q %v %+v", id.Token(), id.ExpiresAt(), id.Subject)
	}
}

// is_admin_project as keystoneauth reads it: false only when the token
// says so (Keystone with [resource] admin_project_name set, for any other
// project); absent or true is the admin project. Subjects that differ in
// it are not shared, and it survives the JSON other replicas read.
func TestIsAdminProject(t *testing.T) {
	const token = `{"token":{"expires_at":"2026-11-25T12:00:00.000000Z","user":{"id":"u1"},"project":{"id":"p1"},"roles":[{"name":"admin"}]%s}}`
	parse := func(field string) *Identity {
		var tb tokenBody
		if err := json.Unmarshal([]byte(strings.Replace(token, "%s", field, 1)), &tb); err != nil {
			t.Fatal(err)
		}
		id, err := tb.identity("tok", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	absent, admin, other := parse(""), parse(`,"is_admin_project":true`), parse(`,"is_admin_project":false`)
	if absent.NotAdminProject || admin.NotAdminProject || !other.NotAdminProject {
		t.Errorf("NotAdminProject: absent %v, true %v, false %v; want false, false, true", absent.NotAdminProject, admin.NotAdminProject, other.NotAdminProject)
	}
	if other.Subject == admin.Subject {
		t.Error("tokens in and out of the admin project share a Subject")
	}
	blob, err := json.Marshal(other)
	if err != nil {
		t.Fatal(err)
	}
	var shared Identity
	if err := json.Unmarshal(blob, &shared); err != nil || !shared.NotAdminProject {
		t.Errorf("shared as %s: NotAdminProject %v, %v; want true", blob, shared.Subject != nil && shared.NotAdminProject, err)
	}
}
