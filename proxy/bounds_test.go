package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/guard"
)

// An access key longer than any record's (128 bytes) is unknown without a
// lookup, and counts towards the client's unknown-key lockout like any
// other (a review: 1 MiB keys in a form cost a store lookup each, even
// from a locked client, and the negative cache held them long after
// negative_ttl).
func TestOverlongAccessKeysAreNotLookedUp(t *testing.T) {
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{Lockout: guard.NewLockout(guard.LockoutConfig{MaxFailures: 3, Window: time.Minute, Duration: 15 * time.Minute}, nil)}
	}))
	for i := range 6 {
		key := fmt.Sprintf("%04d", i) + strings.Repeat("a", 256<<10)
		resp := h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"AWSAccessKeyId": key}).Encode(), nil)
		want := 401
		if i >= 3 {
			want = 403 // the client is locked for unknown keys
		}
		if resp.StatusCode != want {
			t.Errorf("request %d: %d %s; want %d", i, resp.StatusCode, bodyOf(resp), want)
		}
	}
	if n := h.store.calls.Load(); n != 0 {
		t.Errorf("%d store lookups for access keys no record can have", n)
	}
}

// Client-sent text in log lines is cut short: a refused request's Action
// could be as large as its body (a review).
func TestRejectionLogsAreBounded(t *testing.T) {
	h := newHarness(t)
	big := strings.Repeat("A", 900<<10)
	resp := h.post(signed("POST", h.host(), "/", "not-the-secret", map[string]string{"Action": big}).Encode(), nil)
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	lines := h.logs.FilterMessage("request rejected").All()
	if len(lines) == 0 {
		t.Fatal("the rejection was not logged")
	}
	for _, e := range lines {
		if a, _ := e.ContextMap()["action"].(string); a != strings.Repeat("A", maxLogged)+"…" {
			t.Errorf("logged action of %d bytes; want the first %d and an ellipsis", len(a), maxLogged)
		}
	}
}
