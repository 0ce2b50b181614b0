package keystoneclient

import (
	"strings"
	"testing"
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
		id, err := tb.identity("tok")
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
