package policy

import (
	"slices"
	"testing"
)

func TestDefaultRule(t *testing.T) {
	p := mustParse(t, "default: role:member\nec2:RunInstances: role:admin\n")
	tests := []struct {
		action   string
		creds    Creds
		want     bool
		wantRule string
	}{
		{"RunInstances", member, false, "ec2:RunInstances"},
		{"RunInstances", Creds{Roles: []string{"admin"}}, true, "ec2:RunInstances"},
		{"DescribeInstances", member, true, "default"},
		{"DescribeInstances", Creds{}, false, "default"},
		{"runinstances", member, true, "default"}, // actions are case-sensitive
		{"", member, true, "default"},
	}
	for _, tt := range tests {
		if got, rule := p.Authorize([]byte(tt.action), &tt.creds, &own); got != tt.want || rule != tt.wantRule {
			t.Errorf("Authorize(%q, %v) = %v, %q; want %v, %q", tt.action, tt.creds.Roles, got, rule, tt.want, tt.wantRule)
		}
	}

	p = mustParse(t, "ec2:RunInstances: \"@\"\n")
	if got, rule := p.Authorize([]byte("DescribeInstances"), &member, &own); got || rule != "" {
		t.Errorf("without a default rule: Authorize = %v, %q; want false, \"\"", got, rule)
	}
	if got, path := p.Explain("DescribeInstances", &member, &own); got || path != nil {
		t.Errorf("without a default rule: Explain = %v, %q; want false, nil", got, path)
	}
}

func TestNilCredsAndTarget(t *testing.T) {
	p := mustParse(t, "default: \"role:member or project_id:%(project_id)s or is_admin:True\"\nec2:Open: \"\"\n")
	if got, _ := p.Authorize([]byte("X"), nil, nil); got {
		t.Error("Authorize(nil, nil) allowed a rule with checks")
	}
	if got, _ := p.Authorize([]byte("Open"), nil, nil); !got {
		t.Error(`Authorize(nil, nil) refused ""`)
	}
	if got, path := p.Explain("X", nil, nil); got || len(path) != 5 {
		t.Errorf("Explain(nil, nil) = %v, %q", got, path)
	}
}

func TestExplain(t *testing.T) {
	p := mustParse(t, `
context_is_admin: role:admin
owner: project_id:%(project_id)s
member_role: role:member or role:_member_
project_member: rule:member_role and not rule:stack_user and rule:owner
stack_user: role:heat_stack_user
default: rule:project_member
ec2:DescribeInstances: rule:project_member or role:heat_stack_user
ec2:Admin: is_admin:True
ec2:NotAdmin: is_admin:False
`)
	stack := Creds{ProjectID: "p1", Roles: []string{"member", "heat_stack_user"}}
	tests := []struct {
		action string
		creds  Creds
		target Target
		want   bool
		path   []string
	}{
		{"RunInstances", member, own, true,
			[]string{"default", "rule:project_member", "rule:member_role", "role:member", "not rule:stack_user", "rule:owner", "project_id:%(project_id)s"}},
		{"RunInstances", Creds{ProjectID: "p1", Roles: []string{"reader"}}, own, false,
			[]string{"default", "rule:project_member", "rule:member_role", "role:member", "role:_member_"}},
		{"RunInstances", stack, own, false,
			[]string{"default", "rule:project_member", "not rule:stack_user"}},
		{"RunInstances", member, Target{ProjectID: "p2"}, false,
			[]string{"default", "rule:project_member", "rule:owner", "project_id:%(project_id)s"}},
		{"DescribeInstances", stack, own, true,
			[]string{"ec2:DescribeInstances", "role:heat_stack_user"}},
		{"Admin", Creds{Roles: []string{"Admin"}}, own, true,
			[]string{"ec2:Admin", "is_admin:True", "rule:context_is_admin", "role:admin"}},
		{"NotAdmin", member, own, true,
			[]string{"ec2:NotAdmin", "is_admin:False", "rule:context_is_admin", "role:admin"}},
	}
	for _, tt := range tests {
		got, path := p.Explain(tt.action, &tt.creds, &tt.target)
		if got != tt.want || !slices.Equal(path, tt.path) {
			t.Errorf("Explain(%s, %v, %+v) = %v, %q; want %v, %q", tt.action, tt.creds.Roles, tt.target, got, path, tt.want, tt.path)
		}
		if ok, _ := p.Authorize([]byte(tt.action), &tt.creds, &tt.target); ok != got {
			t.Errorf("Authorize(%s) = %v; Explain says %v", tt.action, ok, got)
		}
	}

	p = mustParse(t, "ec2:A: \"not (role:x or role:y)\"\nec2:B: is_admin:True\n")
	if got, path := p.Explain("A", &member, &own); !got || !slices.Equal(path, []string{"ec2:A", "not (role:x or role:y)"}) {
		t.Errorf("Explain(A) = %v, %q", got, path)
	}
	if got, path := p.Explain("B", &member, &own); got || !slices.Equal(path, []string{"ec2:B", "is_admin:True", "role:admin"}) {
		t.Errorf("Explain(B) = %v, %q", got, path)
	}
}

func TestListings(t *testing.T) {
	p := mustParse(t, "ec2:RunInstances: role:x\nb: role:y\nec2:AllocateAddress: rule:b\ndefault: \"!\"\n")
	if got, want := p.Actions(), []string{"AllocateAddress", "RunInstances"}; !slices.Equal(got, want) {
		t.Errorf("Actions() = %q; want %q", got, want)
	}
	p.Actions()[0] = "changed"
	if got := p.Actions()[0]; got != "AllocateAddress" {
		t.Errorf("Actions() shares its slice: %q", got)
	}
	if got, want := p.Rules(), []string{"b", "default", "ec2:AllocateAddress", "ec2:RunInstances"}; !slices.Equal(got, want) {
		t.Errorf("Rules() = %q; want %q", got, want)
	}
	if got, ok := p.Rule("ec2:AllocateAddress"); !ok || got != "rule:b" {
		t.Errorf("Rule(ec2:AllocateAddress) = %q, %v", got, ok)
	}
	if _, ok := p.Rule("nope"); ok {
		t.Error("Rule(nope) found")
	}

	p = mustParse(t, "context_is_admin: rule:admins\nadmins: role:admin\nowner: project_id:x\nprojet_member: rule:owner\nec2:A: is_admin:True\nlonely: \"@\"\n")
	if got, want := p.Unused(), []string{"lonely", "owner", "projet_member"}; !slices.Equal(got, want) {
		t.Errorf("Unused() = %q; want %q", got, want)
	}
}

// A compiled policy is shared by every request goroutine.
func TestConcurrentAuthorize(t *testing.T) {
	p := mustParse(t, "context_is_admin: role:admin\ndefault: \"is_admin:True or (role:member and project_id:%(project_id)s)\"\n")
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 1000 {
				a, _ := p.Authorize([]byte("RunInstances"), &member, &own)
				ok = ok && a
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("a concurrent Authorize refused")
		}
	}
}

// Roles match as oslo.policy matches them: both lower-cased with Python's
// str.lower(), whose verdicts these are (oslo_policy._parser.parse_rule on
// the rule below). strings.EqualFold also took ſ for s and ς for σ (a
// review).
func TestRolesMatchAsOsloLowerCases(t *testing.T) {
	p, err := Parse([]byte(`default: "role:ResellerAdmin or role:swiftoperator or role:σύνολο"`))
	if err != nil {
		t.Fatal(err)
	}
	for role, want := range map[string]bool{
		"RESELLERADMIN": true, "reſelleradmin": false, "ſwiftoperator": false, "SWIFTOPERATOR": true,
		"ΣΎΝΟΛΟ": true, "σύνολο": true, "ςύνολο": false, "member": false,
	} {
		if ok, _ := p.Authorize([]byte("X"), &Creds{ProjectID: "p", Roles: []string{role}}, nil); ok != want {
			t.Errorf("role %q: allowed %v; oslo.policy says %v", role, ok, want)
		}
	}
}
