//go:build !race

package policy

import (
	"os"
	"testing"
)

// Authorize runs once per request: it may not allocate, whatever decides.
func TestAuthorizeAllocs(t *testing.T) {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := mustParse(t, string(data))
	lang := mustParse(t, `
context_is_admin: "role:admin or project_id:admins"
ec2:Generic: "user_id:%(user_id)s and 'x':x and not trust_id:t1 and True:%(project_id)s or is_admin:True"
ec2:List: [["role:a", "role:b"], ["role:member"]]
`)
	stack := Creds{ProjectID: "p1", Roles: []string{"member", "heat_stack_user"}}
	admin := Creds{ProjectID: "p1", Roles: []string{"reader", "Admin"}}
	tests := []struct {
		name   string
		p      *Policy
		action string
		creds  *Creds
	}{
		{"default allow", def, "RunInstances", &member},
		{"default refuse", def, "RunInstances", &stack},
		{"default admin", def, "TerminateInstances", &admin},
		{"default rule", def, "SomeFutureAction", &member},
		{"stack user read", def, "DescribeInstances", &stack},
		{"no creds", def, "DescribeInstances", nil},
		{"generic checks", lang, "Generic", &admin},
		{"list form", lang, "List", &member},
		{"no rule", lang, "Nothing", &member},
	}
	for _, tt := range tests {
		action := []byte(tt.action)
		if n := testing.AllocsPerRun(100, func() { tt.p.Authorize(action, tt.creds, &own) }); n != 0 {
			t.Errorf("%s: Authorize allocates %v times; want 0", tt.name, n)
		}
	}
}
