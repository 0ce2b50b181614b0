package test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// Real clients signing SigV2, through real Redis and Keystone: each call
// reaches the backend with a Keystone token and the demo user's identity.
func TestRealClientsSigV2(t *testing.T) {
	s := startStack(t, nil)
	access, secret := s.putDemoCredential()
	ks := testenv.KeystoneEnv(t)
	clients := []struct {
		name string
		args []string
	}{
		{"boto2 HmacSHA256 POST", []string{"--client", "boto2", "--sigv2", "HmacSHA256"}},
		{"boto2 HmacSHA1 POST", []string{"--client", "boto2", "--sigv2", "HmacSHA1"}},
		{"boto2 HmacSHA256 GET", []string{"--client", "boto2", "--sigv2", "HmacSHA256", "--verb", "GET"}},
		{"boto2 HmacSHA1 GET with filters", []string{"--client", "boto2", "--sigv2", "HmacSHA1", "--verb", "GET", "--action", "DescribeInstances",
			"--param", "Filter.1.Name=tag:Name", "--param", "Filter.1.Value.1=a b;c~d+e*é", "--param", "Filter.10.Name=x", "--param", "Filter.2.Name=y"}},
		{"botocore v2 POST", []string{"--client", "botocore", "--sigv2", "HmacSHA256", "--action", "DescribeAvailabilityZones"}},
		{"botocore v2 POST with filters", []string{"--client", "botocore", "--sigv2", "HmacSHA256", "--action", "DescribeInstances",
			"--param", "Filter.1.Name=tag:Name", "--param", "Filter.1.Value.1=a b;c~d+e*é"}},
	}
	for _, path := range []string{"/services/Cloud/", "/"} {
		for _, c := range clients {
			t.Run(c.name+" "+path, func(t *testing.T) {
				s.backend.Reset()
				args := append([]string{"--endpoint", s.url + path, "--access", access, "--secret", secret}, c.args...)
				r := s.call(args...)
				if !r.OK {
					t.Fatalf("call failed: %+v", r)
				}
				got, ok := s.backend.Last()
				if !ok {
					t.Fatal("backend saw nothing")
				}
				for name, want := range map[string]string{
					"X-Identity-Status": "Confirmed",
					"X-User-Id":         ks.Var(t, "DEMO_USER_ID"),
					"X-Project-Id":      ks.Var(t, "DEMO_PROJECT_ID"),
					"X-Project-Name":    "demo",
					"X-User-Name":       "demo",
				} {
					if g := got.Header.Values(name); len(g) != 1 || g[0] != want {
						t.Errorf("backend %s = %q; want %q", name, g, want)
					}
				}
				if roles := got.Header.Get("X-Roles"); !strings.Contains(","+roles+",", ",member,") {
					t.Errorf("X-Roles = %q; want member among them", roles)
				}
				if token := got.Header.Get("X-Auth-Token"); token == "" {
					t.Error("backend got no X-Auth-Token")
				}
			})
		}
	}
	// The token the backend got is a real Keystone token for the demo project.
	last, _ := s.backend.Last()
	if project := validateToken(t, ks, last.Header.Get("X-Auth-Token")); project != ks.Var(t, "DEMO_PROJECT_ID") {
		t.Errorf("forwarded token is scoped to project %q; want the demo project", project)
	}
	s.assertNoSecretsLogged(secret, last.Header.Get("X-Auth-Token"))
	// One Keystone exchange for one access key, however many requests.
	if n := s.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens", "result", "ok"); n != 1 {
		t.Errorf("%v ec2tokens calls for %d requests with one key; want 1", n, 2*len(clients))
	}
}

// Failures real clients see: each with the right EC2 code, none forwarded.
func TestRealClientsSigV2Failures(t *testing.T) {
	s := startStack(t, nil)
	access, secret := s.putDemoCredential()
	tests := []struct {
		name   string
		args   []string
		status int
		code   string
	}{
		{"boto2 wrong secret", []string{"--client", "boto2", "--sigv2", "HmacSHA256", "--secret", "0000" + secret[4:]}, 403, "SignatureDoesNotMatch"},
		{"botocore wrong secret", []string{"--client", "botocore", "--sigv2", "HmacSHA256", "--secret", "0000" + secret[4:]}, 403, "SignatureDoesNotMatch"},
		{"boto2 clock 10 min slow", []string{"--client", "boto2", "--sigv2", "HmacSHA256", "--clock-skew", "-600"}, 400, "RequestExpired"},
		{"botocore clock 10 min fast", []string{"--client", "botocore", "--sigv2", "HmacSHA256", "--clock-skew", "600"}, 400, "RequestExpired"},
		{"boto2 unknown access key", []string{"--client", "boto2", "--sigv2", "HmacSHA256", "--access", "ffffffffffffffffffffffffffffffff"}, 401, "AuthFailure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.backend.Reset()
			args := append([]string{"--endpoint", s.url + "/services/Cloud/", "--access", access, "--secret", secret}, tt.args...)
			r := s.call(args...)
			if r.OK || r.Status != tt.status || r.Code != tt.code {
				t.Errorf("got ok=%v %d %q (%s); want %d %s", r.OK, r.Status, r.Code, r.Message, tt.status, tt.code)
			}
			if r.Message == "" {
				t.Error("empty error message")
			}
			if n := len(s.backend.Requests()); n != 0 {
				t.Errorf("backend received %d requests", n)
			}
		})
	}
	s.assertNoSecretsLogged(secret, "0000"+secret[4:])
}

// A parameter changed after signing, and identity headers a client sends:
// built by hand, as no client library will produce them.
func TestTamperedAndSpoofedRequests(t *testing.T) {
	s := startStack(t, nil)
	access, secret := s.putDemoCredential()
	ks := testenv.KeystoneEnv(t)
	host := strings.TrimPrefix(s.url, "http://")
	sign := func(params map[string]string) url.Values {
		params["AWSAccessKeyId"], params["SignatureMethod"], params["SignatureVersion"] = access, "HmacSHA256", "2"
		params["Timestamp"], params["Version"] = time.Now().UTC().Format("2006-01-02T15:04:05Z"), "2016-11-15"
		var pairs []sigv2.Pair
		v := url.Values{}
		for k, val := range params {
			pairs = append(pairs, sigv2.Pair{Name: k, Value: val})
			v.Set(k, val)
		}
		v.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign("POST", host, "/", pairs)))
		return v
	}
	post := func(body string, header http.Header) (*http.Response, string) {
		req, _ := http.NewRequest("POST", s.url+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.String()
	}

	tampered := sign(map[string]string{"Action": "DescribeInstances", "InstanceId.1": "i-1"})
	tampered.Set("InstanceId.1", "i-2")
	if resp, body := post(tampered.Encode(), nil); resp.StatusCode != 403 || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
		t.Errorf("tampered: %d %s", resp.StatusCode, body)
	}
	dup := sign(map[string]string{"Action": "DescribeInstances"}).Encode() + "&Action=TerminateInstances"
	if resp, body := post(dup, nil); resp.StatusCode != 400 || !strings.Contains(body, "Action is given more than once") {
		t.Errorf("duplicate Action: %d %s", resp.StatusCode, body)
	}
	v1 := sign(map[string]string{"Action": "DescribeInstances", "SignatureVersion": "1"})
	v1.Set("SignatureVersion", "1")
	if resp, body := post(v1.Encode(), nil); resp.StatusCode != 400 || !strings.Contains(body, "SignatureVersion 1 is not accepted") {
		t.Errorf("SignatureVersion 1: %d %s", resp.StatusCode, body)
	}
	if n := len(s.backend.Requests()); n != 0 {
		t.Fatalf("backend received %d rejected requests", n)
	}

	spoofed := http.Header{"X-Auth-Token": {"spoofed"}, "X-Roles": {"admin"}, "X-User-Id": {"root"},
		"X-Project-Id": {"other"}, "X-Identity-Status": {"Confirmed"}, "X-Service-Catalog": {"[]"}, "X-Forwarded-For": {"10.6.6.6"}}
	resp, body := post(sign(map[string]string{"Action": "DescribeRegions"}).Encode(), spoofed)
	if resp.StatusCode != 200 {
		t.Fatalf("spoofed headers: %d %s", resp.StatusCode, body)
	}
	got, _ := s.backend.Last()
	if g := got.Header.Values("X-User-Id"); len(g) != 1 || g[0] != ks.Var(t, "DEMO_USER_ID") {
		t.Errorf("X-User-Id = %q", g)
	}
	if g := got.Header.Values("X-Auth-Token"); len(g) != 1 || g[0] == "spoofed" {
		t.Errorf("X-Auth-Token = %q", g)
	}
	if g := got.Header.Values("X-Roles"); len(g) != 1 || strings.Contains(g[0], "admin") {
		t.Errorf("X-Roles = %q", g)
	}
	if g := got.Header.Values("X-Service-Catalog"); len(g) != 0 {
		t.Errorf("X-Service-Catalog forwarded: %q", g)
	}
	if g := got.Header.Values("X-Forwarded-For"); len(g) != 1 || g[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q; an untrusted client's value must be replaced", g)
	}
}

// A key that is in Redis but that Keystone does not know gets AuthFailure;
// Keystone is asked once, not per request.
func TestCredentialUnknownToKeystone(t *testing.T) {
	s := startStack(t, nil)
	ks := testenv.KeystoneEnv(t)
	access, secret := "e2e0000000000000000000000000dead", "e2e0000000000000000000000000beef"
	if err := s.store.Put(t.Context(), credRecord(access, secret, ks.Var(t, "DEMO_USER_ID"), ks.Var(t, "DEMO_PROJECT_ID"))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := s.call("--client", "boto2", "--sigv2", "HmacSHA256", "--endpoint", s.url+"/", "--access", access, "--secret", secret)
		if r.Status != 401 || r.Code != "AuthFailure" || !strings.Contains(r.Message, "Keystone did not accept") {
			t.Errorf("call %d: %+v", i, r)
		}
	}
	if n := s.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens", "result", "rejected"); n != 1 {
		t.Errorf("keystone asked %v times about a rejected key; want 1", n)
	}
}

// Redis down: 503 ServiceUnavailable quickly, never 403; /readyz says so.
func TestRedisDownIs503(t *testing.T) {
	s := startStack(t, func(c *configs.Config) { c.Redis.Addrs = []string{"127.0.0.1:1"} })
	start := time.Now()
	r := s.call("--client", "boto2", "--sigv2", "HmacSHA256", "--endpoint", s.url+"/", "--access", "AKIDNOTCACHED", "--secret", "x")
	if r.Status != 503 || r.Code != "ServiceUnavailable" {
		t.Errorf("got %+v; want 503 ServiceUnavailable", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if status, body := get(t, s.adminURL+"/readyz"); status != 503 || !strings.Contains(body, "redis:") {
		t.Errorf("/readyz = %d %q; want 503 naming redis", status, body)
	}
}

func TestAdminEndpoints(t *testing.T) {
	s := startStack(t, nil)
	if status, body := get(t, s.adminURL+"/healthz"); status != 200 {
		t.Errorf("/healthz = %d %s", status, body)
	}
	if status, body := get(t, s.adminURL+"/readyz"); status != 200 || !strings.Contains(body, "redis: ok") || !strings.Contains(body, "keystone: ok") {
		t.Errorf("/readyz = %d %s", status, body)
	}
	status, body := get(t, s.adminURL+"/metrics")
	for _, want := range []string{"ec2proxy_requests_total", "ec2proxy_build_info", "ec2proxy_cache_entries{cache=\"credential\"}", "go_goroutines"} {
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// validateToken asks Keystone about a token, as a backend's auth_token
// middleware would, and returns its project id.
func validateToken(t *testing.T, ks testenv.Keystone, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", ks.URL+"/v3/auth/tokens?nocatalog", nil)
	req.Header.Set("X-Auth-Token", serviceToken(t, ks))
	req.Header.Set("X-Subject-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token struct {
			Project struct{ ID string } `json:"project"`
		} `json:"token"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 {
		t.Errorf("keystone says the forwarded token is invalid: %d", resp.StatusCode)
	}
	return body.Token.Project.ID
}
