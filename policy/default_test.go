package policy

import (
	"os"
	"strings"
	"testing"
)

// The shipped default policy (configs/policy.yaml, embedded as
// configs.DefaultPolicy) decides as documented in its comments.
func TestDefaultPolicy(t *testing.T) {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, string(data))
	if unused := p.Unused(); len(unused) > 0 {
		t.Errorf("rules that decide nothing: %q", unused)
	}

	as := func(roles ...string) Creds {
		return Creds{UserID: "u1", UserDomainID: "default", ProjectID: "p1", ProjectDomainID: "default", Roles: roles}
	}
	var (
		writes    = []string{"RunInstances", "TerminateInstances", "CreateVolume", "AuthorizeSecurityGroupIngress", "CreateTags", "CreateVpc", "SomeFutureAction"}
		stackRead = []string{"DescribeInstances", "DescribeAvailabilityZones", "DescribeRegions", "DescribeImages", "DescribeKeyPairs", "DescribeSecurityGroups", "DescribeAddresses", "DescribeVolumes", "DescribeTags"}
		reads     = []string{"DescribeSnapshots", "DescribeVpcs", "DescribeSubnets", "DescribeImageAttribute", "DescribeAccountAttributes", "DescribeNetworkInterfaces"}
		secrets   = []string{"DescribeInstanceAttribute", "GetConsoleOutput", "GetPasswordData", "DescribeVpnConnections"}
	)
	tests := []struct {
		name    string
		creds   Creds
		target  Target
		allowed [][]string
		refused [][]string
	}{
		{"member", as("member"), own, [][]string{writes, stackRead, reads, secrets}, nil},
		{"member with implied reader", as("member", "reader"), own, [][]string{writes, stackRead, reads, secrets}, nil},
		{"legacy _member_", as("_member_"), own, [][]string{writes, stackRead, reads, secrets}, nil},
		{"role names are case-insensitive", as("Member"), own, [][]string{writes, reads}, nil},
		{"member of another project", as("member"), Target{ProjectID: "p2", UserID: "u1"}, nil, [][]string{writes, stackRead, reads, secrets}},
		{"member without a project", Creds{UserID: "u1", Roles: []string{"member"}}, Target{UserID: "u1"}, nil, [][]string{writes, stackRead, reads, secrets}},
		{"admin", as("admin"), own, [][]string{writes, stackRead, reads, secrets}, nil},
		{"admin with implied roles", as("admin", "member", "reader"), own, [][]string{writes, stackRead, reads, secrets}, nil},
		{"admin in another project", as("admin"), Target{ProjectID: "p2"}, [][]string{writes, stackRead, reads, secrets}, nil},
		{"reader", as("reader"), own, [][]string{stackRead, reads}, [][]string{writes, secrets}},
		{"heat_stack_user", as("heat_stack_user"), own, [][]string{stackRead}, [][]string{writes, reads, secrets}},
		// Like Heat's deny_stack_user, the role restricts whatever else the
		// caller holds.
		{"member and heat_stack_user", as("member", "heat_stack_user"), own, [][]string{stackRead}, [][]string{writes, reads, secrets}},
		{"admin and heat_stack_user", as("admin", "heat_stack_user"), own, [][]string{stackRead}, [][]string{writes, reads, secrets}},
		{"heat_stack_user of another project", as("heat_stack_user"), Target{ProjectID: "p2"}, nil, [][]string{stackRead}},
		{"no roles", as(), own, nil, [][]string{writes, stackRead, reads, secrets}},
		{"an unknown role", as("swiftoperator"), own, nil, [][]string{writes, stackRead, reads, secrets}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for want, groups := range map[bool][][]string{true: tt.allowed, false: tt.refused} {
				for _, group := range groups {
					for _, action := range group {
						got, rule := p.Authorize([]byte(action), &tt.creds, &tt.target)
						if got != want {
							_, path := p.Explain(action, &tt.creds, &tt.target)
							t.Errorf("%s %v on %+v: allowed = %v; want %v (%s)", action, tt.creds.Roles, tt.target, got, want, strings.Join(path, " -> "))
						}
						if wantRule := "ec2:" + action; rule != wantRule && !(action == "SomeFutureAction" && rule == "default") {
							t.Errorf("%s: decided by %q; want %q", action, rule, wantRule)
						}
					}
				}
			}
		})
	}
}

// Every read-only action (Describe*) of the default policy is classified:
// open to readers, or kept from them for a stated reason.
func TestDefaultPolicyReads(t *testing.T) {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, string(data))
	membersOnly := map[string]bool{"DescribeInstanceAttribute": true, "DescribeVpnConnections": true}
	reader := Creds{ProjectID: "p1", Roles: []string{"reader"}}
	for _, action := range p.Actions() {
		if !strings.HasPrefix(action, "Describe") {
			continue
		}
		if got, _ := p.Authorize([]byte(action), &reader, &own); got == membersOnly[action] {
			t.Errorf("reader %s: allowed = %v", action, got)
		}
	}
	if n := len(p.Actions()); n < 90 {
		t.Errorf("the default policy names %d actions; want every ec2-api action (97)", n)
	}
}
