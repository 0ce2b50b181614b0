package keystoneclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
)

// fakeKeystone answers /v3/auth/tokens and /v3/ec2tokens like Keystone 22
// does (keystone-real.md), and lets tests inject faults.
type fakeKeystone struct {
	t       *testing.T
	secrets map[string]string // access -> secret
	now     func() time.Time

	mu             sync.Mutex
	serviceToken   string          // the newest
	valid          map[string]bool // every service token not revoked
	users          map[string]bool // every ec2tokens token not revoked
	authCalls      atomic.Int64
	validateCalls  atomic.Int64
	ec2Calls       atomic.Int64
	ec2Status      int           // forced status for ec2tokens, 0 = normal
	validateStatus int           // forced status for token validation, 0 = normal
	validateGate   chan struct{} // if set, validations wait until it is closed
	validateDelay  time.Duration // before answering a validation
	authDelay      time.Duration // before answering a password authentication
	revokeNext     int           // ec2tokens tokens to issue revoked already (a revocation in their second)
	ec2Delay       time.Duration // before answering ec2tokens
	tokenTTL       time.Duration
	trust          bool
}

func newFakeKeystone(t *testing.T) (*fakeKeystone, *httptest.Server) {
	f := &fakeKeystone{t: t, secrets: map[string]string{"AK": "SECRET"}, now: time.Now, tokenTTL: time.Hour}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v3/auth/tokens":
		if r.Method == http.MethodGet { // validation: a token may validate itself
			f.validateCalls.Add(1)
			f.mu.Lock()
			gate, delay := f.validateGate, f.validateDelay
			f.mu.Unlock()
			time.Sleep(delay)
			if gate != nil {
				<-gate
			}
			f.mu.Lock()
			caller, subject := f.valid[r.Header.Get("X-Auth-Token")], r.Header.Get("X-Subject-Token")
			known, forced := f.valid[subject] || f.users[subject], f.validateStatus
			f.mu.Unlock()
			if forced != 0 {
				w.WriteHeader(forced)
				return
			}
			if !caller {
				w.WriteHeader(401)
				fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication."}}`)
				return
			}
			if !known {
				w.WriteHeader(404)
				fmt.Fprint(w, `{"error":{"code":404,"message":"Could not find token: x.","title":"Not Found"}}`)
				return
			}
			fmt.Fprintf(w, `{"token":{"expires_at":%q}}`, f.now().Add(f.tokenTTL).UTC().Format("2006-01-02T15:04:05.000000Z"))
			return
		}
		f.authCalls.Add(1)
		f.mu.Lock()
		authDelay := f.authDelay
		f.mu.Unlock()
		time.Sleep(authDelay)
		var body struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string }
					}
				}
			}
		}
		json.NewDecoder(r.Body).Decode(&body)
		if body.Auth.Identity.Password.User.Password != "svcpass" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`)
			return
		}
		f.mu.Lock()
		f.serviceToken = fmt.Sprintf("svc-%d", f.authCalls.Load())
		if f.valid == nil {
			f.valid = map[string]bool{}
		}
		f.valid[f.serviceToken] = true
		tok := f.serviceToken
		f.mu.Unlock()
		w.Header().Set("X-Subject-Token", tok)
		w.WriteHeader(201)
		fmt.Fprintf(w, `{"token":{"expires_at":%q,"issued_at":%q}}`, f.now().Add(f.tokenTTL).UTC().Format("2006-01-02T15:04:05.000000Z"), f.now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	case "/v3/ec2tokens":
		f.ec2Calls.Add(1)
		time.Sleep(f.ec2Delay)
		f.mu.Lock()
		validToken, forced := f.valid[r.Header.Get("X-Auth-Token")], f.ec2Status
		f.mu.Unlock()
		if !validToken {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication."}}`)
			return
		}
		if forced != 0 {
			w.WriteHeader(forced)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":"forced"}}`, forced)
			return
		}
		var body struct {
			Credentials struct {
				Access, Signature, Host, Verb, Path string
				Params                              map[string]string
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(400)
			return
		}
		c := body.Credentials
		secret, ok := f.secrets[c.Access]
		if !ok {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":404,"message":"Could not find credential: abc"}}`)
			return
		}
		// Check the signature the way Keystone's Ec2Signer does (v2, SHA-256).
		var pairs []sigv2.Pair
		for k, v := range c.Params {
			pairs = append(pairs, sigv2.Pair{Name: k, Value: v})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i].Name < pairs[j].Name })
		want := sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign(c.Verb, c.Host, c.Path, pairs))
		if c.Signature != want || c.Params["SignatureVersion"] != "2" || c.Params["Timestamp"] == "" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"code":401,"message":"Invalid EC2 signature."}}`)
			return
		}
		trust := ""
		if f.trust {
			trust = `,"OS-TRUST:trust":{"id":"tr1","trustor_user":{"id":"u-trustor"},"trustee_user":{"id":"u-trustee"},"impersonation":false}`
		}
		token := fmt.Sprintf("gAAAA-%d", f.ec2Calls.Load())
		f.mu.Lock()
		if f.users == nil {
			f.users = map[string]bool{}
		}
		if f.revokeNext > 0 {
			f.revokeNext--
		} else {
			f.users[token] = true
		}
		f.mu.Unlock()
		w.Header().Set("X-Subject-Token", token)
		fmt.Fprintf(w, `{"token":{"methods":["ec2credential"],"expires_at":%q,"issued_at":%q,
			"user":{"id":"u1","name":"demo","domain":{"id":"d1","name":"demo"}},
			"project":{"id":"p1","name":"demo","domain":{"id":"d1","name":"demo"}},
			"roles":[{"id":"r1","name":"member"},{"id":"r2","name":"reader"}],
			"catalog":[{"endpoints":[],"type":"identity"}]%s}}`,
			f.now().Add(f.tokenTTL).UTC().Format("2006-01-02T15:04:05.000000Z"), f.now().UTC().Format("2006-01-02T15:04:05.000000Z"), trust)
	default:
		w.WriteHeader(404)
	}
}

// revokeServiceTokens makes every service token issued so far invalid.
func (f *fakeKeystone) revokeServiceTokens() {
	f.mu.Lock()
	f.valid = nil
	f.mu.Unlock()
}

// revokeUserTokens makes every token ec2tokens gave so far invalid.
func (f *fakeKeystone) revokeUserTokens() {
	f.mu.Lock()
	f.users = nil
	f.mu.Unlock()
}

func (f *fakeKeystone) set(fn func(*fakeKeystone)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}
