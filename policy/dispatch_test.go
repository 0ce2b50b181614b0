package policy

import (
	"strings"
	"testing"
)

// The names nova's camelcase_to_underscore gives, computed with Python's
// re (the regex in dispatch.go) by /usr/bin/python3.
func TestDispatchNameMatchesNova(t *testing.T) {
	for in, want := range map[string]string{
		"RunInstances":                "run_instances",
		"DescribeInstances":           "describe_instances",
		"registerImage":               "register_image",
		"REGISTERImage":               "register_image",
		"RegisterIMAGE":               "register_image",
		"register_image":              "register_image",
		"_RegisterImage_":             "register_image",
		"DescribeIpv6Pools":           "describe_ipv6_pools",
		"CreateVPC":                   "create_vpc",
		"AssociateDhcpOptions":        "associate_dhcp_options",
		"A":                           "a",
		"":                            "",
		"ABC":                         "abc",
		"aBc":                         "a_bc",
		"DescribeVPCEndpointServices": "describe_vpc_endpoint_services",
		"X_Y":                         "x_y",
	} {
		got, ok := dispatchName(in)
		if !ok || got != want {
			t.Errorf("dispatchName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	// Python lower-cases the Kelvin sign to 'k': "CreateNetwor\u212aAcl"
	// runs create_network_acl. Not ASCII: no rule may be taken for it.
	if _, ok := dispatchName("CreateNetwor\u212aAcl"); ok {
		t.Error("a non-ASCII action was given a name")
	}
}

// A respelled action is decided by its own rule, as the backend runs its
// method (found by a review: "registerImage" was decided by "default", a
// member could run what ec2:RegisterImage kept for admins); a non-ASCII
// one by none.
func TestAuthorizeFindsTheRuleOfTheMethodRun(t *testing.T) {
	p, err := Parse([]byte("default: \"role:member\"\nec2:RegisterImage: \"role:admin\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Creds{ProjectID: "p", UserID: "u", Roles: []string{"member"}}
	for _, a := range []string{"RegisterImage", "registerImage", "register_image", "REGISTERImage", "_RegisterImage"} {
		if ok, rule := p.Authorize([]byte(a), c, nil); ok || rule != "ec2:RegisterImage" {
			t.Errorf("Action=%s by a member: allowed=%v by %q; want refused by ec2:RegisterImage", a, ok, rule)
		}
	}
	if ok, rule := p.Authorize([]byte("Register\u212aImage"), c, nil); ok || rule != "" {
		t.Errorf("a non-ASCII action: allowed=%v by %q; want refused by no rule", ok, rule)
	}
	// '_' padding is stripped from the method's name: a long action still
	// runs register_image (found while reviewing the fix).
	if ok, rule := p.Authorize([]byte(strings.Repeat("_", 200)+"RegisterImage"), c, nil); ok || rule != "" {
		t.Errorf("a padded action: allowed=%v by %q; want refused by no rule", ok, rule)
	}
	if ok, _ := p.Authorize([]byte("DescribeImages"), c, nil); !ok {
		t.Error("an action without a rule of its own is not decided by default")
	}
	for _, a := range []string{"registerImage", strings.Repeat("aB", 64)} { // the longest name: twice the action
		if n := testing.AllocsPerRun(100, func() { p.Authorize([]byte(a), c, nil) }); n != 0 {
			t.Errorf("Authorize(%.20q...) allocates %v times", a, n)
		}
	}
}

func TestParseRefusesTwoRulesForOneMethod(t *testing.T) {
	_, err := Parse([]byte("ec2:RegisterImage: \"role:admin\"\nec2:registerImage: \"role:member\"\n"))
	if err == nil {
		t.Fatal("two rules for register_image parsed")
	}
}
