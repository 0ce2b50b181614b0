package test

import (
	"strconv"
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

// A throttled botocore client gets through: it retries RequestLimitExceeded
// after rand × 2^n s, signing again, and SigV2's Timestamp counts whole
// seconds, so a retry within the same second carries the same signature.
// With replay protection on, the limited request's marker made that retry
// a replay (400 RequestExpired, which botocore does not retry): the call
// failed about half the times it was throttled.
func TestThrottledBotocoreRetriesAreNotReplays(t *testing.T) {
	for _, scope := range []string{configs.ScopeReplica, configs.ScopeFleet} {
		t.Run(scope, func(t *testing.T) {
			s := startStack(t, func(c *configs.Config) {
				// A token every 250 ms: each call but the first is limited
				// (botocore answers in milliseconds), and a retry (after
				// rand × 2^n s, up to 4) is limited again rarely enough
				// that 5 attempts always get through.
				c.Protection.RateLimit = configs.RateLimit{RequestsPerSecond: 4, Burst: 1, Scope: scope}
				c.Protection.Replay.Enabled = true
			})
			access, secret := s.putDemoCredential()
			const calls = 6
			r := s.call("--client", "botocore", "--sigv2", "HmacSHA256", "--endpoint", s.url+"/",
				"--access", access, "--secret", secret, "--calls", strconv.Itoa(calls))
			if !r.OK {
				t.Fatalf("throttled client, %d calls in a row: %+v", calls, r)
			}
			if r.Retries == 0 {
				t.Fatal("botocore never retried: the rate limit did not engage, and the test shows nothing")
			}
			if n := len(s.backend.Requests()); n != calls {
				t.Errorf("backend saw %d requests, want %d", n, calls)
			}
			t.Logf("%d calls, %d retries", calls, r.Retries)
		})
	}
}
