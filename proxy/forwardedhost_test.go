package proxy

import (
	"io"
	"net/http"
	"strings"
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

// A trusted balancer's X-Forwarded-Host is the first name tried, not the
// only one (found by a review): nginx's "X-Forwarded-Host $host" has no
// port while Host kept it, a balancer may send the port apart in
// X-Forwarded-Port, or add a default port a SigV4 client left out.
func TestForwardedHostCandidates(t *testing.T) {
	h := newHarness(t, func(c *configs.Config, _ *Options) { c.Server.TrustedProxies = []string{"127.0.0.0/8"} })
	direct := strings.TrimPrefix(h.url, "http://") // 127.0.0.1:port, what Host says
	send := func(version int, signedFor, host string, header http.Header) *http.Response {
		t.Helper()
		var body string
		req, _ := http.NewRequest(http.MethodPost, h.url+"/", nil)
		if version == 2 {
			body = signed("POST", signedFor, "/", testSecret, nil).Encode()
		} else {
			body = "Action=DescribeRegions&Version=2016-11-15"
			auth, date := signV4(signedFor, body, testAccess, testSecret, testNow)
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Amz-Date", date)
		}
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Host = host
		for k, v := range header {
			req.Header[k] = v
		}
		return h.do(req)
	}
	hostOnly, _, _ := strings.Cut(direct, ":")
	for _, version := range []int{2, 4} {
		for _, c := range []struct {
			name, signedFor, host string
			header                http.Header
		}{
			{"Host kept, X-Forwarded-Host without its port", direct, direct, http.Header{"X-Forwarded-Host": {hostOnly}}},
			{"port in X-Forwarded-Port", "ec2.example.com:8773", "replica.internal", http.Header{"X-Forwarded-Host": {"ec2.example.com"}, "X-Forwarded-Port": {"8773"}}},
			{"default port added by the balancer", "ec2.example.com", "replica.internal", http.Header{"X-Forwarded-Host": {"ec2.example.com:443"}, "X-Forwarded-Proto": {"https"}}},
		} {
			if resp := send(version, c.signedFor, c.host, c.header); resp.StatusCode != 200 {
				t.Errorf("SigV%d, %s: %d %s", version, c.name, resp.StatusCode, bodyOf(resp))
			}
		}
		// None of the names is the one signed: refused, the message showing
		// what was computed for the first (X-Forwarded-Host).
		resp := send(version, "ec2.example.com:9999", "replica.internal", http.Header{"X-Forwarded-Host": {"ec2.example.com"}, "X-Forwarded-Port": {"8773"}})
		msg := bodyOf(resp)
		if resp.StatusCode != 403 || !strings.Contains(msg, "SignatureDoesNotMatch") || !strings.Contains(msg, "ec2.example.com\n") {
			t.Errorf("SigV%d, no name matches: %d %s; want 403 showing the forwarded host's computation", version, resp.StatusCode, msg)
		}
	}
}

// protection.allowed_hosts applies to every name tried: a request signed
// for a host not served, in the Host header behind a balancer that names
// a served one in X-Forwarded-Host, is refused.
func TestForwardedHostCandidatesAllowedHosts(t *testing.T) {
	h := newHarness(t, func(c *configs.Config, _ *Options) {
		c.Server.TrustedProxies = []string{"127.0.0.0/8"}
		c.Protection.AllowedHosts = []string{"ec2.example.com"}
	})
	body := signed("POST", "other.example.com", "/", testSecret, nil).Encode()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("X-Forwarded-Host", "ec2.example.com")
	req.Host = "other.example.com"
	wantEC2Error(t, h.do(req), 403, "SignatureDoesNotMatch", "")
}
