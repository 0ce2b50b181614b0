package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// Any input is a policy or a list of errors, never a panic; a policy decides
// every action the same way through Authorize and Explain; and the canonical
// form of every rule parses back to itself.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.*")
	files = append(files, "../configs/policy.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`a: "not (role:x or role:y) and (role:z)"`,
		`a: "((role:x)or(role:member))"`,
		`a: [["role:x", "role:y"], [], "role:z"]`,
		"a: rule:b\nb: is_admin:True\ncontext_is_admin: rule:a\n",
		`{"a": "'p':%(project_id)s or True:%(user_id)s"}`,
		"role:a and or (",
	} {
		f.Add([]byte(s))
	}
	creds := []*Creds{nil, &member, {ProjectID: "p1", Roles: []string{"admin", "heat_stack_user"}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, msgs := compileText(string(data)); n != nil {
			roundTrip(t, n)
		} else if len(msgs) == 0 {
			t.Fatalf("compileText(%q): no rule and no error", data)
		}

		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatal("Parse returned a policy and an error")
			}
			if errs, ok := err.(Errors); !ok || len(errs) == 0 {
				t.Fatalf("Parse error %T %v; want Errors", err, err)
			}
			return
		}
		for _, name := range p.Rules() {
			roundTrip(t, p.rules[name].root)
		}
		for _, action := range append(p.Actions(), "NoSuchAction") {
			for _, c := range creds {
				ok, rule := p.Authorize([]byte(action), c, &own)
				ok2, path := p.Explain(action, c, &own)
				if ok != ok2 || rule == "" != (len(path) == 0) || len(path) > 0 && path[0] != rule {
					t.Fatalf("%s: Authorize = %v, %q; Explain = %v, %q", action, ok, rule, ok2, path)
				}
			}
		}
	})
}

func roundTrip(t *testing.T, n *node) {
	t.Helper()
	s := n.String()
	again, msgs := compileText(s)
	if again == nil || again.String() != s {
		t.Fatalf("canonical form %q parses as %v %q", s, again, msgs)
	}
}
