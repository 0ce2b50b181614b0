package test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/demobackend"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// tokenCheckingBackend answers as a backend behind keystonemiddleware's
// auth_token does: it asks Keystone about every X-Auth-Token (no cache)
// and answers 401 for one Keystone does not know.
type tokenCheckingBackend struct {
	t       *testing.T
	ks      testenv.Keystone
	backend demobackend.Backend
	mu      sync.Mutex
	service string   // the backend's own service token
	tokens  []string // X-Auth-Token of each request, in order
}

func (b *tokenCheckingBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.Header.Get("X-Auth-Token")
	b.mu.Lock()
	b.tokens = append(b.tokens, token)
	if b.service == "" {
		b.service = serviceToken(b.t, b.ks)
	}
	service := b.service
	b.mu.Unlock()
	if keystoneTokenStatus(b.t, b.ks, "GET", service, token) != http.StatusOK {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Keystone uri=%q", b.ks.URL))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`)
		return
	}
	b.backend.ServeHTTP(w, r)
}

func (b *tokenCheckingBackend) lastToken() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tokens[len(b.tokens)-1]
}

// serviceToken authenticates as the service user.
func serviceToken(t *testing.T, ks testenv.Keystone) string {
	auth := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"password":%q,"domain":{"name":%q}}}},"scope":{"project":{"name":%q,"domain":{"name":%q}}}}}`,
		ks.ServiceUser, ks.ServicePassword, ks.ServiceDomain, ks.ServiceProject, ks.ServiceDomain)
	resp, err := http.Post(ks.URL+"/v3/auth/tokens?nocatalog", "application/json", strings.NewReader(auth))
	if err != nil {
		t.Error(err)
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("X-Subject-Token")
}

// keystoneTokenStatus validates (GET) or revokes (DELETE) subject.
func keystoneTokenStatus(t *testing.T, ks testenv.Keystone, method, service, subject string) int {
	req, _ := http.NewRequest(method, ks.URL+"/v3/auth/tokens?nocatalog", nil)
	req.Header.Set("X-Auth-Token", service)
	req.Header.Set("X-Subject-Token", subject)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A token Keystone revokes before it expires (here by DELETE
// /v3/auth/tokens, as disabling the user or taking away a role does) made
// every request of its key fail at the backend until the cached token's
// renewal, an hour later. Now the backend's 401 makes the replica ask
// Keystone about the token and drop it, from the shared store too: the
// next requests get a new token, and the other replica, whose copy fails
// next, takes the new one from the store instead of asking Keystone.
func TestRevokedTokenIsReplacedAfterTheBackendRefusesIt(t *testing.T) {
	ks := testenv.KeystoneEnv(t)
	backend := &tokenCheckingBackend{t: t, ks: ks}
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)
	a, b := startReplicas(t, func(c *configs.Config) {
		c.Routes = []configs.Route{{PathPrefix: "/", Backend: srv.URL}}
	})
	k := demoKey(t)
	putKeys(t, a.store, k)
	warmUp(t, a, k)
	wantOK(t, "b, with a's shared token", ec2Call(b.url, "/", k.access, k.secret, nil))
	revoked := backend.lastToken()
	admin := keystoneLogin(t, ks, ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"),
		ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT_ID"))
	if status := keystoneTokenStatus(t, ks, "DELETE", admin.token, revoked); status != http.StatusNoContent {
		t.Fatalf("revoking the token: Keystone answered %d", status)
	}

	for _, r := range []struct { // in this order: b takes the token a got after its drop
		name string
		s    *stack
	}{{"a", a}, {"b", b}} {
		name, s := r.name, r.s
		if r := ec2Call(s.url, "/", k.access, k.secret, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("replica %s with the revoked token: %s; want the backend's 401", name, r)
		}
		took, ok := eventually(5*time.Second, func() bool { return ec2Call(s.url, "/", k.access, k.secret, nil).status == 200 })
		if !ok {
			t.Fatalf("replica %s still fails 5 s after the backend refused its revoked token", name)
		}
		if backend.lastToken() == revoked {
			t.Fatalf("replica %s was served with the revoked token", name)
		}
		if v := s.metric("ec2proxy_keystone_requests_total", "op", "validate", "result", "rejected"); v != 1 {
			t.Errorf("replica %s: %v token checks found the token revoked, want 1", name, v)
		}
		t.Logf("replica %s served again %v after the backend's 401", name, took.Round(time.Millisecond))
	}
	calls := a.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens") + b.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens")
	if calls != 2 {
		t.Errorf("%v ec2tokens calls for two replicas, want 2 (the first token, and one after the revocation)", calls)
	}
	if hits := b.metric("ec2proxy_shared_tokens_total", "result", "hit"); hits != 2 {
		t.Errorf("b took %v tokens from the shared store, want 2 (a's first, and a's new one)", hits)
	}
	a.assertNoSecretsLogged(k.secret, revoked)
}
