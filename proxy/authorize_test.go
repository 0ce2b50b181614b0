package proxy

import (
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/policy"
)

type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Policy() *policy.Policy { return s.p }

func withPolicy(t *testing.T, rules []byte) harnessOption {
	p, err := policy.Parse(rules)
	if err != nil {
		t.Fatal(err)
	}
	return func(_ *configs.Config, o *Options) { o.Policy = staticPolicy{p} }
}

// The shipped policy over standalone identities: members act, Heat stack
// users only look, and the refusal names the action and the rule.
func TestPolicyAuthorizesActions(t *testing.T) {
	h := newHarness(t, withPolicy(t, configs.DefaultPolicy))
	post := func(action string) (int, string) {
		resp := h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"Action": action}).Encode(), nil)
		return resp.StatusCode, bodyOf(resp)
	}
	for _, action := range []string{"DescribeInstances", "RunInstances", "TerminateInstances"} {
		if status, body := post(action); status != 200 {
			t.Errorf("member %s: %d %s", action, status, body)
		}
	}
	h2 := newHarness(t, withPolicy(t, configs.DefaultPolicy))
	rec := h2.store.records[testAccess]
	rec.Roles = []string{"heat_stack_user"}
	h2.store.records[testAccess] = rec
	resp := h2.post(signed("POST", h2.host(), "/", testSecret, map[string]string{"Action": "RunInstances"}).Encode(), nil)
	wantEC2Error(t, resp, 403, "UnauthorizedOperation", "RunInstances is refused by policy rule ec2:RunInstances")
	if len(h2.backend.Requests()) != 0 {
		t.Error("a refused action reached the backend")
	}
	resp = h2.post(signed("POST", h2.host(), "/", testSecret, map[string]string{"Action": "DescribeInstances"}).Encode(), nil)
	if resp.StatusCode != 200 {
		t.Errorf("stack user DescribeInstances: %d %s", resp.StatusCode, bodyOf(resp))
	}
	m := metricsText(t, h2)
	for _, want := range []string{
		`ec2proxy_policy_decisions_total{action="RunInstances",result="deny"} 1`,
		`ec2proxy_policy_decisions_total{action="DescribeInstances",result="allow"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// An action the policy does not name is counted as "other".
	resp = h2.post(signed("POST", h2.host(), "/", testSecret, map[string]string{"Action": "MadeUpAction"}).Encode(), nil)
	wantEC2Error(t, resp, 403, "UnauthorizedOperation", "MadeUpAction")
	if m := metricsText(t, h2); !strings.Contains(m, `ec2proxy_policy_decisions_total{action="other",result="deny"} 1`) {
		t.Error("an unnamed action is not counted as other")
	}
}
