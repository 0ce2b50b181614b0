package test

import (
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
)

// Two replicas sharing Redis: failed signatures on one lock the key on both.
func TestLockoutSharedAcrossReplicas(t *testing.T) {
	lockout := func(c *configs.Config) { c.Protection.Lockout.MaxFailures = 3 }
	a, b := startReplicas(t, lockout)
	access, secret := a.putDemoCredential()
	wrong := "0000" + secret[4:]
	call := func(s *stack, secret string, action ...string) callResult {
		return s.call(append([]string{"--client", "botocore", "--endpoint", s.url + "/", "--access", access, "--secret", secret}, action...)...)
	}
	// Three different requests (an identical retry would count once).
	for i, action := range []string{"DescribeRegions", "DescribeAvailabilityZones", "DescribeInstances"} {
		if r := call(a, wrong, "--action", action); r.Code != "SignatureDoesNotMatch" {
			t.Fatalf("wrong secret %d on a: %+v", i, r)
		}
	}
	if r := call(a, secret); r.Code != "AuthFailure" || !strings.Contains(r.Message, "locked until") {
		t.Fatalf("right secret on a after 3 failures: %+v; want locked", r)
	}
	// b has seen no failure: it learns of the lock through the events
	// channel and refuses the right secret too.
	var last callResult
	if _, ok := eventually(time.Second, func() bool {
		last = call(b, secret)
		return last.Code == "AuthFailure" && strings.Contains(last.Message, "locked until")
	}); !ok {
		t.Errorf("right secret on b 1 s after a locked the key: %+v; want locked", last)
	}
	if n := a.metric("ec2proxy_lockouts_total", "kind", "access_key") + b.metric("ec2proxy_lockouts_total", "kind", "access_key"); n < 1 {
		t.Errorf("lockouts_total = %v", n)
	}
}
