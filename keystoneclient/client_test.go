package keystoneclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
)

type testClock struct{ t atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *testClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func newTestClient(t *testing.T, url string, clock *testClock) *Client {
	t.Helper()
	if clock.t.Load() == 0 {
		clock.t.Store(time.Now().UnixNano())
	}
	c, err := New(Config{
		AuthURL: url, Username: "ec2proxy", Password: "svcpass", UserDomainName: "Default",
		ProjectName: "service", ProjectDomainName: "Default",
		Timeout: time.Second, TokenMargin: 5 * time.Minute, MaxTokens: 100, Now: clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var key = sigv2.NewKey([]byte("SECRET"))

func TestIdentityParsedAndCached(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	f.now = clock.now
	c := newTestClient(t, srv.URL+"/v3/", &clock)
	ctx := context.Background()
	id, err := c.Identity(ctx, "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	if id.Token() != "gAAAA-1" || id.UserID != "u1" || id.ProjectID != "p1" || id.ProjectDomainID != "d1" ||
		id.UserDomainName != "demo" || id.RolesHeader != "member,reader" || id.TrustID != "" {
		t.Errorf("identity = %+v", id)
	}
	for i := 0; i < 10; i++ {
		c.Identity(ctx, "AK", key)
	}
	clock.advance(54 * time.Minute) // still more than the 5 min margin before expiry
	c.Identity(ctx, "AK", key)
	if n := f.ec2Calls.Load(); n != 1 {
		t.Errorf("%d ec2tokens calls within one token lifetime; want 1", n)
	}
	clock.advance(2 * time.Minute) // inside the margin: renewed in the background, the old token served meanwhile
	if id, _ := c.Identity(ctx, "AK", key); id.Token() != "gAAAA-1" {
		t.Errorf("inside the margin: %q; want the old token at once while it is renewed", id.Token())
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if id, _ := c.Identity(ctx, "AK", key); id.Token() == "gAAAA-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token not renewed inside the margin")
		}
	}
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("%d ec2tokens calls; want 2: one renewal however many requests", n)
	}
	// The service token is past its own renewal point too: renewed once,
	// in the background, while the old one keeps working.
	if n := f.authCalls.Load(); n > 2 {
		t.Errorf("%d service authentications; want at most 2", n)
	}
}

func TestTrustScopedToken(t *testing.T) {
	f, srv := newFakeKeystone(t)
	f.trust = true
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	id, err := c.Identity(context.Background(), "AK", key)
	if err != nil {
		t.Fatal(err)
	}
	if id.TrustID != "tr1" || id.TrustorID != "u-trustor" || id.TrusteeID != "u-trustee" {
		t.Errorf("trust fields = %+v", id)
	}
}

func TestOneExchangePerKeyUnderConcurrency(t *testing.T) {
	f, srv := newFakeKeystone(t)
	f.ec2Delay = 100 * time.Millisecond
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Identity(context.Background(), "AK", key); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.ec2Calls.Load(); n != 1 {
		t.Errorf("50 concurrent requests caused %d ec2tokens calls; want 1", n)
	}
}

func TestErrorsClassified(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*fakeKeystone)
		access string
		want   error
		text   string
	}{
		{"unknown access key", nil, "NOPE", ErrRejected, "404"},
		{"wrong secret", func(f *fakeKeystone) { f.secrets["AK"] = "OTHER" }, "AK", ErrRejected, "Invalid EC2 signature"},
		{"service user lacks role", func(f *fakeKeystone) { f.ec2Status = 403 }, "AK", ErrRejected, "403"},
		{"keystone error", func(f *fakeKeystone) { f.ec2Status = 500 }, "AK", ErrUnavailable, "500"},
		{"keystone hangs", func(f *fakeKeystone) { f.ec2Delay = 3 * time.Second }, "AK", ErrUnavailable, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeKeystone(t)
			if tt.setup != nil {
				f.set(tt.setup)
			}
			var clock testClock
			c := newTestClient(t, srv.URL, &clock)
			start := time.Now()
			_, err := c.Identity(context.Background(), tt.access, key)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Identity = %v; want %v containing %q", err, tt.want, tt.text)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("took %v; the timeout is 1s", d)
			}
		})
	}
}

// The refusal of ec2tokens for a missing role says how to give it, naming
// the project the account is scoped to as it is scoped (a stale
// OS_PROJECT_NAME beside OS_PROJECT_ID was named: found by a review), or,
// for an application credential, that it must be made again.
func TestPolicyRefusalNamesTheServiceUser(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  func(*Config)
		want string
	}{
		"names":      {func(*Config) {}, `the service user "ec2proxy" may not call ec2tokens: give it role service on project "service"`},
		"project id": {func(c *Config) { c.ProjectID = "p-1" }, `give it role service on project id p-1`},
		"application credential": {func(c *Config) {
			c.Username, c.ApplicationCredentialID, c.ApplicationCredentialSecret = "", "ac-1", "acs"
		},
			`the service application credential "ac-1" may not call ec2tokens: create it again as a user with role service`},
	} {
		t.Run(name, func(t *testing.T) {
			f, srv := newFakeKeystone(t)
			var clock testClock
			c := newTestClient(t, srv.URL, &clock)
			tc.cfg(&c.cfg)
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/ec2tokens") {
					w.WriteHeader(403)
					w.Write([]byte(`{"error":{"code":403,"message":"You are not authorized to perform the requested action: identity:ec2tokens_validate."}}`))
					return
				}
				if r.Method == http.MethodPost { // any account authenticates here
					f.set(func(f *fakeKeystone) { f.valid = map[string]bool{"svc": true} })
					w.Header().Set("X-Subject-Token", "svc")
					w.WriteHeader(201)
					fmt.Fprintf(w, `{"token":{"expires_at":%q}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
					return
				}
				f.ServeHTTP(w, r)
			})
			_, err := c.Identity(context.Background(), "AK", key)
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Identity = %v; want ErrUnavailable saying %s", err, tc.want)
			}
		})
	}
}

func TestRejectionRemembered(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	for i := 0; i < 5; i++ {
		c.Identity(context.Background(), "NOPE", key)
	}
	if n := f.ec2Calls.Load(); n != 1 {
		t.Errorf("rejected key asked %d times; want 1 within RejectTTL", n)
	}
	clock.advance(6 * time.Second)
	c.Identity(context.Background(), "NOPE", key)
	if n := f.ec2Calls.Load(); n != 2 {
		t.Errorf("after RejectTTL: %d calls; want 2", n)
	}
}

// A service token Keystone no longer accepts (rotated fernet keys, ceph
// issue 71359) is replaced once, and the request still succeeds.
func TestServiceTokenRefreshedOn401(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	c := newTestClient(t, srv.URL, &clock)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	f.revokeServiceTokens()
	c.Forget("AK")
	clock.advance(time.Minute)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatalf("after service token invalidation: %v", err)
	}
	if n := f.authCalls.Load(); n != 2 {
		t.Errorf("%d service authentications; want 2", n)
	}
}

func TestBadServicePassword(t *testing.T) {
	_, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	c, _ := New(Config{AuthURL: srv.URL, Username: "ec2proxy", Password: "wrong", Now: clock.now, Timeout: time.Second})
	_, err := c.Identity(context.Background(), "AK", key)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `service authentication as user "ec2proxy" answered 401`) {
		t.Errorf("Identity = %v", err)
	}
	if err := c.Ready(context.Background()); err == nil {
		t.Error("Ready with a bad service password = nil")
	}
}

func TestKeystoneDownAnswersQuickly(t *testing.T) {
	var clock testClock
	c := newTestClient(t, "http://127.0.0.1:1", &clock)
	start := time.Now()
	_, err := c.Identity(context.Background(), "AK", key)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Identity = %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestCachedTokenSurvivesKeystoneOutage(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	f.now = clock.now
	c := newTestClient(t, srv.URL, &clock)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	clock.advance(30 * time.Minute)
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Errorf("cached token not served while Keystone is down: %v", err)
	}
	clock.advance(26 * time.Minute) // inside the margin; renewal fails; stale allowed until 1 min before expiry
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Errorf("stale token not served while Keystone is down: %v", err)
	}
	clock.advance(4 * time.Minute) // 1 min before expiry: no longer served
	if _, err := c.Identity(context.Background(), "AK", key); !errors.Is(err, ErrUnavailable) {
		t.Errorf("nearly expired token served: %v", err)
	}
}

// The ec2tokens body is what it was when it was marshalled from maps.
func TestExchangeBodyUnchanged(t *testing.T) {
	var clock testClock
	c := newTestClient(t, "http://keystone.invalid", &clock)
	got := c.exchangeBody("AK", key)
	var body struct {
		Credentials struct {
			Signature string `json:"signature"`
			Params    struct{ Timestamp string }
		} `json:"credentials"`
	}
	if err := json.Unmarshal(got, &body); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]any{"credentials": map[string]any{
		"access": "AK", "signature": body.Credentials.Signature, "host": ExchangeHost, "verb": "POST", "path": "/",
		"params": map[string]string{"AWSAccessKeyId": "AK", "Action": "GetIdentity", "SignatureMethod": "HmacSHA256",
			"SignatureVersion": "2", "Timestamp": body.Credentials.Params.Timestamp},
	}})
	if string(got) != string(want) {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
}

// Ids, where given, name the service account's domains and project instead
// of the names (Horizon's openrc sets OS_PROJECT_ID and
// OS_PROJECT_DOMAIN_ID, and a name may be absent or stale).
func TestServiceAuthenticationByID(t *testing.T) {
	bodies := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	cases := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"names", func(*Config) {}, `"scope":{"project":{"domain":{"name":"Default"},"name":"service"}}`},
		{"user domain id", func(c *Config) { c.UserDomainID = "d-user" }, `"domain":{"id":"d-user"},"name":"ec2proxy"`},
		{"project domain id", func(c *Config) { c.ProjectDomainID = "d-proj" }, `"project":{"domain":{"id":"d-proj"},"name":"service"}`},
		{"project id", func(c *Config) { c.ProjectID, c.ProjectDomainID = "p-1", "d-proj" }, `"scope":{"project":{"id":"p-1"}}`},
		{"user id", func(c *Config) { c.UserID = "u-1" }, `"password":{"user":{"id":"u-1","password":"svcpass"}}`},
		{"application credential", func(c *Config) {
			*c = Config{AuthURL: c.AuthURL, ApplicationCredentialID: "ac-1", ApplicationCredentialSecret: "acs", Timeout: time.Second}
		}, `{"auth":{"identity":{"application_credential":{"id":"ac-1","secret":"acs"},"methods":["application_credential"]}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{AuthURL: srv.URL, Username: "ec2proxy", Password: "svcpass", UserDomainName: "Default",
				ProjectName: "service", ProjectDomainName: "Default", Timeout: time.Second}
			tc.cfg(&cfg)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.Ready(context.Background()) //nolint:errcheck // refused: only the body matters
			if body := <-bodies; !strings.Contains(body, tc.want) {
				t.Errorf("authentication body %s lacks %s", body, tc.want)
			}
		})
	}
}
