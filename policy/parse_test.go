package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return p
}

// member is a member of project p1; own is the target of its EC2 requests.
var (
	member = Creds{UserID: "u1", UserDomainID: "d1", ProjectID: "p1", ProjectDomainID: "d1", Roles: []string{"member", "reader"}}
	own    = Target{ProjectID: "p1", UserID: "u1"}
)

func TestLanguage(t *testing.T) {
	with := func(roles ...string) Creds { c := member; c.Roles = roles; return c }
	tests := []struct {
		name   string
		rule   string // the rule of ec2:Do
		extra  string // more rules, YAML
		creds  Creds
		target Target
		want   bool
	}{
		{"empty string allows", `""`, "", Creds{}, Target{}, true},
		{"@ allows", `"@"`, "", Creds{}, Target{}, true},
		{"! refuses", `"!"`, "", member, own, false},
		{"role", `"role:member"`, "", member, own, true},
		{"role absent", `"role:admin"`, "", member, own, false},
		{"role is case-insensitive", `"role:Member"`, "", with("MEMBER"), own, true},
		{"role is not a prefix", `"role:mem"`, "", member, own, false},
		{"no roles", `"role:member"`, "", with(), own, false},
		{"role with a colon", `"role:compute:admin"`, "", with("compute:admin"), own, true},
		{"rule reference", `"rule:m"`, "m: role:member", member, own, true},
		{"rule reference chain", `"rule:a"`, "a: rule:b\nb: rule:c\nc: role:reader", member, own, true},
		{"rule named like an action", `"rule:ec2:Other"`, "ec2:Other: role:member", member, own, true},
		{"and", `"role:member and role:reader"`, "", member, own, true},
		{"and fails", `"role:member and role:admin"`, "", member, own, false},
		{"or", `"role:admin or role:member"`, "", member, own, true},
		{"or fails", `"role:admin or role:x"`, "", member, own, false},
		{"not", `"not role:admin"`, "", member, own, true},
		{"not fails", `"not role:member"`, "", member, own, false},
		{"not not", `"not not role:member"`, "", member, own, true},
		{"keywords in any case", `"role:admin OR role:member AND Not role:x"`, "", member, own, true},

		// not > and > or, as in oslo.policy.
		{"and binds tighter than or", `"role:member or role:x and role:y"`, "", member, own, true},
		{"and binds tighter than or, left", `"role:x and role:y or role:member"`, "", member, own, true},
		{"parentheses override", `"(role:member or role:x) and role:y"`, "", member, own, false},
		{"not binds tighter than and", `"not role:x and role:member"`, "", member, own, true},
		{"not binds tighter than or", `"not role:member or role:reader"`, "", member, own, true},
		{"not of a group", `"not (role:x or role:member)"`, "", member, own, false},
		{"parentheses glued to checks", `"((role:x)or(role:member))"`, "", member, own, false}, // "x)or(role" is one check
		{"parentheses apart", `"( ( role:x ) or ( role:member ) )"`, "", member, own, true},
		{"nested parentheses", `"((role:member and (role:reader or role:x)))"`, "", member, own, true},

		// Generic checks on the caller, with target substitution.
		{"project_id from target", `"project_id:%(project_id)s"`, "", member, own, true},
		{"project_id other target", `"project_id:%(project_id)s"`, "", member, Target{ProjectID: "p2", UserID: "u1"}, false},
		{"user_id from target", `"user_id:%(user_id)s"`, "", member, own, true},
		{"user_id other target", `"user_id:%(user_id)s"`, "", member, Target{ProjectID: "p1", UserID: "u2"}, false},
		{"empty caller project never matches", `"project_id:%(project_id)s"`, "", Creds{Roles: []string{"member"}}, Target{}, false},
		{"empty target never matches", `"project_id:%(project_id)s"`, "", member, Target{}, false},
		{"literal project", `"project_id:p1"`, "", member, Target{}, true},
		{"literal project differs", `"project_id:P1"`, "", member, own, false},
		{"user_domain_id", `"user_domain_id:d1"`, "", member, own, true},
		{"project_domain_id", `"project_domain_id:d1"`, "", member, own, true},
		{"trust_id", `"trust_id:t1"`, "", Creds{TrustID: "t1"}, own, true},
		{"trust_id absent", `"trust_id:t1"`, "", member, own, false},
		{"trustor_id", `"trustor_id:u9"`, "", Creds{TrustorID: "u9"}, own, true},
		{"trustee_id", `"trustee_id:u8"`, "", Creds{TrusteeID: "u8"}, own, true},
		{"app_cred_id", `"app_cred_id:a1"`, "", Creds{AppCredID: "a1"}, own, true},
		{"not an application credential", `"not app_cred_id:a1 and role:member"`, "", member, own, true},
		{"trustor owns the target", `"trustor_id:%(user_id)s"`, "", Creds{TrustorID: "u1"}, own, true},

		// oslo's literal left side: 'text', "text", True, False.
		{"quoted literal", `"'p1':%(project_id)s"`, "", Creds{}, own, true},
		{"double-quoted literal", `'"p1":%(project_id)s'`, "", Creds{}, own, true},
		{"quoted literal differs", `"'p2':%(project_id)s"`, "", Creds{}, own, false},
		{"True literal", `"True:%(user_id)s"`, "", Creds{}, Target{UserID: "True"}, true},
		{"False literal", `"False:%(user_id)s"`, "", Creds{}, own, false},
		{"literal against literal", `"'a':a"`, "", Creds{}, Target{}, true},

		// is_admin: context_is_admin when defined, else the role admin.
		{"is_admin by role", `"is_admin:True"`, "", with("admin"), own, true},
		{"is_admin role any case", `"is_admin:true"`, "", with("Admin"), own, true},
		{"not admin", `"is_admin:True"`, "", member, own, false},
		{"is_admin:False", `"is_admin:False"`, "", member, own, true},
		{"is_admin:False for admin", `"is_admin:False"`, "", with("admin"), own, false},
		{"context_is_admin decides", `"is_admin:True"`, "context_is_admin: role:cloud_admin", with("cloud_admin"), own, true},
		{"context_is_admin replaces role admin", `"is_admin:True"`, "context_is_admin: role:cloud_admin", with("admin"), own, false},
		{"context_is_admin target is the caller", `"is_admin:True"`, "context_is_admin: role:admin and project_id:%(project_id)s", with("admin"), Target{ProjectID: "elsewhere"}, true},
		{"context_is_admin by project", `"is_admin:True"`, "context_is_admin: project_id:admins", Creds{ProjectID: "admins"}, own, true},

		// oslo's old list form: a list of lists, or of ands.
		{"list form or", `[["role:x"], ["role:member"]]`, "", member, own, true},
		{"list form and", `[["role:member", "role:x"]]`, "", member, own, false},
		{"list form and holds", `[["role:member", "project_id:%(project_id)s"], ["role:admin"]]`, "", member, own, true},
		{"list form bare strings", `["role:x", "role:member"]`, "", member, own, true},
		{"list form empty allows", `[]`, "", Creds{}, Target{}, true},
		{"list form only empty lists refuses", `[[], []]`, "", member, own, false},
		{"list form empty inner skipped", `[[], ["role:member"]]`, "", member, own, true},
		{"list form rule reference", `[["rule:m"]]`, "m: role:member", member, own, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "ec2:Do: "+tt.rule+"\n"+tt.extra)
			got, rule := p.Authorize([]byte("Do"), &tt.creds, &tt.target)
			if got != tt.want || rule != "ec2:Do" {
				t.Errorf("ec2:Do: %s\n%s\nAuthorize(%+v, %+v) = %v, %q; want %v, \"ec2:Do\"", tt.rule, tt.extra, tt.creds, tt.target, got, rule, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	src := "{\n\t\"context_is_admin\": \"role:admin\",\n\t\"default\": [[\"role:member\"]],\n\t\"ec2:RunInstances\": \"rule:default and not role:heat_stack_user\"\n}\n"
	p := mustParse(t, src)
	if ok, rule := p.Authorize([]byte("RunInstances"), &member, &own); !ok || rule != "ec2:RunInstances" {
		t.Errorf("Authorize(RunInstances) = %v, %q; want true, ec2:RunInstances", ok, rule)
	}
	if got := p.Actions(); len(got) != 1 || got[0] != "RunInstances" {
		t.Errorf("Actions() = %q", got)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ give, want string }{
		{`""`, "@"},
		{`"role:a or role:b and role:c"`, "role:a or (role:b and role:c)"},
		{`"role:a and role:b or role:c and role:d"`, "(role:a and role:b) or (role:c and role:d)"},
		{`"(role:a or role:b) and not role:c"`, "(role:a or role:b) and not role:c"},
		{`"role:a and (role:b and role:c)"`, "role:a and role:b and role:c"},
		{`"role:a or (role:b or (role:c))"`, "role:a or role:b or role:c"},
		{`"not (role:a and role:b)"`, "not (role:a and role:b)"},
		{`"NOT role:a AND role:b"`, "not role:a and role:b"},
		{`[["role:a", "role:b"], ["role:c"]]`, "(role:a and role:b) or role:c"},
		{`"project_id:%(project_id)s"`, "project_id:%(project_id)s"},
	}
	for _, tt := range tests {
		p := mustParse(t, "r: "+tt.give)
		if got, _ := p.Rule("r"); got != tt.want {
			t.Errorf("Rule(%s) = %q; want %q", tt.give, got, tt.want)
		}
	}
}

// Every broken rule is reported, with the rule's name, its line and what is
// wrong.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string // one substring per expected error, in order
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"only comments", "# nothing\n", []string{"the file is empty"}},
		{"null document", "~\n", []string{"the file is empty"}},
		{"empty mapping", "{}\n", []string{`defines no rules (to refuse everything, write default: "!")`}},
		{"a list", "- role:a\n", []string{"line 1: the file is a list, not a mapping of rule names to rules"}},
		{"a string", "role:admin\n", []string{"the file is a string, not a mapping"}},
		{"not YAML", "a: [\n", []string{"not valid YAML or JSON"}},
		{"bad JSON", `{"a": "role:x", "b"`, []string{"not valid YAML or JSON"}},
		{"unbalanced open", `a: "(role:x"`, []string{`line 1: rule "a": unbalanced parentheses: a ( is not closed`}},
		{"unbalanced close", `a: "role:x)"`, []string{`rule "a": unbalanced parentheses: ) without a matching (`}},
		{"unbalanced close later", `a: "(role:x) or role:y)"`, []string{`) without a matching (`}},
		{"empty parentheses", `a: "()"`, []string{`rule "a": empty parentheses`}},
		{"dangling and", `a: "role:x and"`, []string{`"and" at the end needs a check after it`}},
		{"dangling not", `a: "role:x and not"`, []string{`"not" at the end needs a check after it`}},
		{"leading or", `a: "or role:x"`, []string{`"or" needs a check before it`}},
		{"and or", `a: "role:x and or role:y"`, []string{`"or" cannot follow "and"`}},
		{"and before )", `a: "(role:x and) or role:y"`, []string{`"and" needs a check after it, found )`}},
		{"missing operator", `a: "role:x role:y"`, []string{`missing "and" or "or" between "role:x" and "role:y"`}},
		{"missing operator before (", `a: "role:x (role:y)"`, []string{`missing "and" or "or" between "role:x" and "("`}},
		{"missing operator in parentheses", `a: "(role:x role:y)"`, []string{`missing "and" or "or" between "role:x" and "role:y"`}},
		{"blank", `a: "   "`, []string{`rule "a": the rule is blank`}},
		{"no colon", `a: "admin"`, []string{`rule "a": "admin" is not a check (write kind:value, @ or !)`}},
		{"unknown kind", `a: "rol:admin"`, []string{`rule "a": "rol:admin": unknown check kind "rol" (known: role, rule, is_admin, app_cred_id, project_domain_id, project_id, trust_id, trustee_id, trustor_id, user_domain_id, user_id, or a literal`}},
		{"kind is case-sensitive", `a: "Role:admin"`, []string{`unknown check kind "Role"`}},
		{"tenant is not a field", `a: "tenant:%(tenant_id)s"`, []string{`unknown check kind "tenant"`}},
		{"http", `a: "http://example.com/check"`, []string{`"http://example.com/check": http and https checks are not supported`}},
		{"https", `a: "https:example.com"`, []string{`http and https checks are not supported`}},
		{"domain_id", `a: "domain_id:default"`, []string{`domain_id is the scope of a domain-scoped token, which an EC2 caller never has; use project_domain_id or user_domain_id`}},
		{"nothing before colon", `a: ":x"`, []string{`":x": nothing before the colon`}},
		{"empty role", `a: "role:"`, []string{`"role:" names no role`}},
		{"role from target", `a: "role:%(project_id)s"`, []string{`a role is a name, not taken from the target`}},
		{"empty rule reference", `a: "rule:"`, []string{`"rule:" names no rule`}},
		{"is_admin value", `a: "is_admin:yes"`, []string{`"is_admin:yes": is_admin is True or False`}},
		{"empty match", `a: "user_id:"`, []string{`"user_id:": nothing to compare with after the colon`}},
		{"unknown target field", `a: "project_id:%(tenant_id)s"`, []string{`unknown target field "tenant_id" (known: project_id, user_id)`}},
		{"partial substitution", `a: "project_id:x-%(project_id)s"`, []string{`% only in a whole %(field)s`}},
		{"two substitutions", `a: "project_id:%(project_id)s%(user_id)s"`, []string{`% only in a whole %(field)s`}},
		{"bad format verb", `a: "project_id:%(project_id)d"`, []string{`% only in a whole %(field)s`}},
		{"quoted string alone", `a: "role:x or 'member'"`, []string{`"'member'" is not a check`}},
		{"unknown rule", "a: rule:nope\n", []string{`line 1: rule "a": "rule:nope" refers to no rule`}},
		{"unknown rule suggests", "Member: role:member\na: rule:member\n", []string{`"rule:member" refers to no rule (did you mean rule:Member?)`}},
		{"self reference", "a: rule:a\n", []string{`rule "a": cycle: a -> rule:a`}},
		{"cycle", "a: role:x or rule:b\nb: rule:c\nc: rule:a\n", []string{`line 1: rule "a": cycle: a -> rule:b -> rule:c -> rule:a`}},
		{"cycle through is_admin", "context_is_admin: is_admin:True or role:admin\n", []string{`rule "context_is_admin": cycle: context_is_admin -> is_admin:True`}},
		{"cycle through is_admin indirectly", "context_is_admin: rule:admin_or_owner\nadmin_or_owner: is_admin:True or project_id:%(project_id)s\n",
			[]string{`cycle: context_is_admin -> rule:admin_or_owner -> is_admin:True`}},
		{"duplicate", "a: role:x\nb: role:y\na: role:z\n", []string{`line 3: rule "a": defined twice (first on line 1)`}},
		{"duplicate JSON", `{"a": "role:x", "a": "role:y"}`, []string{`rule "a": defined twice`}},
		{"null value", "a:\n", []string{`rule "a": no rule given (write "" to allow everyone, "!" to allow no one)`}},
		{"boolean value", "a: true\n", []string{`rule "a": the rule is a boolean, not a string (quote it)`}},
		{"number value", "a: 1\n", []string{`rule "a": the rule is a number, not a string`}},
		{"mapping value", "a: {b: c}\n", []string{`rule "a": the rule is a mapping, not a string`}},
		{"list key", "[a]: role:x\n", []string{`a rule name must be a string, not a list`}},
		{"empty name", `"": role:x`, []string{`a rule name is empty`}},
		{"action wildcard", `"ec2:*": role:x`, []string{`rule "ec2:*": "*" is not an EC2 action name (letters and digits, like ec2:RunInstances; there are no wildcards)`}},
		{"empty action", `"ec2:": role:x`, []string{`"" is not an EC2 action name`}},
		{"action with space", `"ec2:Run Instances": role:x`, []string{`"Run Instances" is not an EC2 action name`}},
		{"list form phrase", `a: [["role:x and role:y"]]`, []string{`list form: "role:x and role:y" is not one check`}},
		{"list form number", `a: [[1]]`, []string{`list form: a number where a check string belongs`}},
		{"list form bad check", `a: [["rol:x"]]`, []string{`unknown check kind "rol"`}},
		{"too deep", "a: " + strings.Repeat("(", 70) + "role:x" + strings.Repeat(")", 70), []string{"nested more than 64 deep"}},
		{"every check error in a rule", `a: "rol:x or role: and (http:y"`, []string{`unknown check kind "rol"`, `"role:" names no role`, `http and https checks`, `a ( is not closed`}},
		{"every broken rule", "a: \"(role:x\"\nb: role:ok\nc: rule:missing\nd: \"rol:x\"\ne:\nf: rule:f\n", []string{
			`line 1: rule "a": unbalanced`,
			`line 3: rule "c": "rule:missing" refers to no rule`,
			`line 4: rule "d": "rol:x": unknown check kind`,
			`line 5: rule "e": no rule given`,
			`line 6: rule "f": cycle: f -> rule:f`,
		}},
		{"reference to a broken rule is not unknown", "a: rule:b\nb: \"role:x)\"\n", []string{`line 2: rule "b": unbalanced`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.give))
			var errs Errors
			if !errors.As(err, &errs) || p != nil {
				t.Fatalf("Parse(%q) = %v, %v; want nil, Errors", tt.give, p, err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("Parse(%q): %d errors; want %d:\n%v", tt.give, len(errs), len(tt.want), err)
			}
			for i, want := range tt.want {
				if i < len(errs) && !strings.Contains(errs[i].Error(), want) {
					t.Errorf("Parse(%q): error %d = %q; want it to contain %q", tt.give, i, errs[i], want)
				}
			}
			if !strings.HasPrefix(err.Error(), "invalid policy:\n  - ") {
				t.Errorf("Error() = %q; want the list form", err)
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse([]byte("ok: role:x\nbad: rule:nope\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("Parse: %v", err)
	}
	if e := errs[0]; e.Line != 2 || e.Rule != "bad" || e.Msg != `"rule:nope" refers to no rule` {
		t.Errorf("error = %+v", *e)
	}
}

// The example files under testdata (also fuzzing seeds) stay what they claim.
func TestTestdata(t *testing.T) {
	for _, name := range []string{"testdata/nova_ec2.json", "testdata/keystone_roles.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	data, err := os.ReadFile("testdata/broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var errs Errors
	if _, err := Parse(data); !errors.As(err, &errs) || len(errs) != 8 {
		t.Errorf("testdata/broken.yaml: %v; want one error for each of its 8 broken rules", err)
	}
}
