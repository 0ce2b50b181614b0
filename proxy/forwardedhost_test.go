package proxy

import (
	"net/http"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
)

// A balancer that rewrites Host (to the replica's address) passes the name
// the client signed in X-Forwarded-Host. It counts only from trusted peers.
func TestForwardedHostFromTrustedPeersOnly(t *testing.T) {
	const public = "ec2.example.com"
	trusting := func(cidr string) harnessOption {
		return func(c *configs.Config, _ *Options) { c.Server.TrustedProxies = []string{cidr} }
	}
	v2 := func(h *harness, fwd string) *http.Response {
		form := signed("POST", public, "/", testSecret, nil).Encode()
		return h.post(form, http.Header{"X-Forwarded-Host": {fwd}})
	}
	v4 := func(h *harness, fwd string) *http.Response {
		body := "Action=DescribeRegions&Version=2016-11-15"
		auth, date := signV4(public, body, testAccess, testSecret, testNow)
		return h.post(body, http.Header{"X-Forwarded-Host": {fwd}, "Authorization": {auth}, "X-Amz-Date": {date}})
	}
	for name, send := range map[string]func(*harness, string) *http.Response{"sigv2": v2, "sigv4": v4} {
		t.Run(name, func(t *testing.T) {
			trusted := newHarness(t, trusting("127.0.0.0/8"))
			if resp := send(trusted, public); resp.StatusCode != 200 {
				t.Errorf("trusted peer, X-Forwarded-Host = signed host: %d %s", resp.StatusCode, bodyOf(resp))
			}
			if resp := send(trusted, public+", proxy2.internal"); resp.StatusCode != 200 {
				t.Errorf("trusted peer, list of forwarded hosts: %d %s", resp.StatusCode, bodyOf(resp))
			}
			wantEC2Error(t, send(trusted, "other.example.com"), 403, "SignatureDoesNotMatch", "")

			untrusted := newHarness(t, trusting("10.0.0.0/8"))
			wantEC2Error(t, send(untrusted, public), 403, "SignatureDoesNotMatch", "")
		})
	}
	// allowed_hosts applies to the host that is verified.
	h := newHarness(t, trusting("127.0.0.0/8"), func(c *configs.Config, _ *Options) { c.Protection.AllowedHosts = []string{public} })
	if resp := v2(h, public); resp.StatusCode != 200 {
		t.Errorf("allowed forwarded host: %d %s", resp.StatusCode, bodyOf(resp))
	}
}
