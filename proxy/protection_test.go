package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/guard"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

func withGuards(g func(*configs.Config) Guards) harnessOption {
	return func(c *configs.Config, o *Options) { o.Guards = g(c) }
}

func TestLockoutAfterFailedSignatures(t *testing.T) {
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{Lockout: guard.NewLockout(guard.LockoutConfig{MaxFailures: 3, Window: 60e9, Duration: 900e9}, nil)}
	}))
	wrong := func(i int) string {
		return signed("POST", h.host(), "/", "wrong", map[string]string{"Version": fmt.Sprint("2016-11-", 10+i)}).Encode()
	}
	same := wrong(0)
	for i := 0; i < 5; i++ { // one failed request retried: counts once
		wantEC2Error(t, h.post(same, nil), 403, "SignatureDoesNotMatch", "")
	}
	wantEC2Error(t, h.post(wrong(1), nil), 403, "SignatureDoesNotMatch", "")
	wantEC2Error(t, h.post(wrong(2), nil), 403, "SignatureDoesNotMatch", "") // third distinct failure: locks
	h.backend.Reset()
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 403, "AuthFailure", "locked until 2026-11-25T10:15:00Z")
	if n := len(h.backend.Requests()); n != 0 {
		t.Errorf("a locked key reached the backend %d times", n)
	}
	var logged bool
	for _, e := range h.logs.All() {
		logged = logged || e.Message == "locked after too many failures"
	}
	if !logged {
		t.Error("the lock was not logged")
	}
	if body := metricsText(t, h); !strings.Contains(body, `ec2proxy_lockouts_total{kind="access_key"} 1`) {
		t.Errorf("lockout metric missing:\n%s", body)
	}
}

func TestUnknownKeysLockTheClient(t *testing.T) {
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{Lockout: guard.NewLockout(guard.LockoutConfig{MaxFailures: 3, Window: 60e9, Duration: 900e9}, nil)}
	}))
	for i := 0; i < 3; i++ { // the third sets the lock, and is answered like the others
		wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"AWSAccessKeyId": fmt.Sprint("guess", i)}).Encode(), nil), 401, "AuthFailure", "unknown or disabled")
	}
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"AWSAccessKeyId": "guess9"}).Encode(), nil), 403, "AuthFailure", "unknown access keys came from this address")
	// A known key from the same address still works: the lock is on guessing.
	if resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil); resp.StatusCode != 200 {
		t.Errorf("valid key from a locked address: %d %s", resp.StatusCode, bodyOf(resp))
	}
}

func TestRateLimitAndReplay(t *testing.T) {
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{RateLimit: guard.NewRateLimit(0.001, 2, 100), Replay: guard.NewSeen(100)}
	}))
	first := signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "a"}).Encode()
	if resp := h.post(first, nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, bodyOf(resp))
	}
	wantEC2Error(t, h.post(first, nil), 400, "RequestExpired", "already used")
	if resp := h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "b"}).Encode(), nil); resp.StatusCode != 200 {
		t.Fatalf("second distinct request: %d", resp.StatusCode)
	}
	limited := signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "c"}).Encode()
	wantEC2Error(t, h.post(limited, nil), 503, "RequestLimitExceeded", "back-off")
	// botocore retries RequestLimitExceeded after under a second, signed
	// again but within the same second of Timestamp: the same signature.
	// The limited request was not used, so its retry is limited again (or
	// admitted), never refused as a replay.
	wantEC2Error(t, h.post(limited, nil), 503, "RequestLimitExceeded", "back-off")
	// A bad signature does not spend the key's tokens.
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", "wrong", nil).Encode(), nil), 403, "SignatureDoesNotMatch", "")
}

func TestAllowedHosts(t *testing.T) {
	h := newHarness(t, func(c *configs.Config, _ *Options) {
		c.Protection.AllowedHosts = []string{"EC2.example.com", "127.0.0.1"}
	})
	if resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil); resp.StatusCode != 200 {
		t.Errorf("allowed host without its port: %d %s", resp.StatusCode, bodyOf(resp))
	}
	h.backend.Reset()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(signed("POST", "evil.example.com", "/", testSecret, nil).Encode()))
	req.Host = "evil.example.com"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantEC2Error(t, h.do(req), 400, "InvalidRequest", "does not serve the host evil.example.com")
	if n := len(h.backend.Requests()); n != 0 {
		t.Errorf("forwarded %d requests for a host not served", n)
	}
}

func metricsText(t *testing.T, h *harness) string {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			labels := []string{}
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if m.Counter != nil {
				fmt.Fprintf(&b, "%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), m.Counter.GetValue())
			}
		}
	}
	return b.String()
}

// admitterStub answers Admit with a fixed verdict, recording what it was
// asked (the fault injection a real Redis cannot do on demand).
type admitterStub struct {
	mu       sync.Mutex
	verdict  guard.Admission
	err      error
	keys     []string
	ttls     []time.Duration
	released []string // nonces
}

func (a *admitterStub) AdmitMarked(_ context.Context, accessKey []byte, _ string, ttl time.Duration) (guard.Admission, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys, a.ttls = append(a.keys, string(accessKey)), append(a.ttls, ttl)
	return a.verdict, fmt.Sprint("nonce-", len(a.keys)), a.err
}

func (a *admitterStub) Release(_ context.Context, _ []byte, _, nonce string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.released = append(a.released, nonce)
	return nil
}

// With Guards.Admit (replay and the fleet rate limit in one Redis command),
// each verdict becomes its EC2 error, and a store failure fails closed.
func TestAdmitterVerdicts(t *testing.T) {
	for _, c := range []struct {
		name    string
		verdict guard.Admission
		err     error
		status  int
		code    string
		message string
	}{
		{"admitted", guard.Admitted, nil, 200, "", ""},
		{"replayed", guard.Replayed, nil, 400, "RequestExpired", "already used"},
		{"limited", guard.Limited, nil, 503, "RequestLimitExceeded", "back-off"},
		{"store down", guard.Admitted, errors.New("redis: connection refused"), 503, "ServiceUnavailable", "replay-protection store is unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stub := &admitterStub{verdict: c.verdict, err: c.err}
			h := newHarness(t, withGuards(func(*configs.Config) Guards { return Guards{Admit: stub} }))
			resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil)
			if c.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("admitted request: %d %s", resp.StatusCode, bodyOf(resp))
				}
			} else {
				wantEC2Error(t, resp, c.status, c.code, c.message)
				if n := len(h.backend.Requests()); n != 0 {
					t.Errorf("a refused request reached the backend %d times", n)
				}
			}
			// 2 × the 5 min timestamp window + 15 min ahead: as long as the request could be accepted.
			if len(stub.keys) != 1 || stub.keys[0] != testAccess || stub.ttls[0] != 25*time.Minute {
				t.Errorf("Admit called with keys %q, TTLs %v; want once with %q, 25m", stub.keys, stub.ttls, testAccess)
			}
			if len(stub.released) != 0 { // SharedAdmission's script drops a limited request's marker itself
				t.Errorf("released %q; the admitter decides alone", stub.released)
			}
		})
	}
	// A bad signature is refused before admission: it spends nothing.
	stub := &admitterStub{verdict: guard.Admitted}
	h := newHarness(t, withGuards(func(*configs.Config) Guards { return Guards{Admit: stub} }))
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", "wrong", nil).Encode(), nil), 403, "SignatureDoesNotMatch", "")
	if len(stub.keys) != 0 {
		t.Errorf("a bad signature was admitted: %q", stub.keys)
	}
}

// A request the identity service could not serve (503: try again) was not
// used: its retry, which botocore signs within the same second and so with
// the same signature, is served once Keystone answers. One Keystone
// refused (AuthFailure: no client retries it) stays used.
func TestReplayMarkerReleasedWhenIdentityUnavailable(t *testing.T) {
	id := keystoneclient.NewIdentity("gAAAAtoken", time.Time{}, &keystoneclient.Subject{UserID: "ku", ProjectID: "kp", RolesHeader: "member"})
	for _, c := range []struct {
		name   string
		guards func() (Guards, *admitterStub)
	}{
		{"in-process markers", func() (Guards, *admitterStub) { return Guards{Replay: guard.NewSeen(100)}, nil }},
		{"admission in one command", func() (Guards, *admitterStub) {
			stub := &admitterStub{verdict: guard.Admitted}
			return Guards{Admit: stub}, stub
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			guards, stub := c.guards()
			source := &fakeIdentity{err: fmt.Errorf("%w: connection refused", keystoneclient.ErrUnavailable)}
			h := newHarness(t, func(_ *configs.Config, o *Options) { o.Identity, o.Guards = source, guards })
			req := signed("POST", h.host(), "/", testSecret, nil).Encode()
			wantEC2Error(t, h.post(req, nil), 503, "ServiceUnavailable", "identity service")
			source.set(id, nil)
			if stub != nil {
				if len(stub.released) != 1 || stub.released[0] != "nonce-1" {
					t.Fatalf("released %q after the 503, want the request's marker (nonce-1)", stub.released)
				}
				return // the stub keeps no markers: what Release does is guard's test
			}
			if resp := h.post(req, nil); resp.StatusCode != 200 {
				t.Fatalf("retry once Keystone answers: %d %s", resp.StatusCode, bodyOf(resp))
			}
			wantEC2Error(t, h.post(req, nil), 400, "RequestExpired", "already used")

			rejected := signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "r"}).Encode()
			source.set(nil, fmt.Errorf("%w: 401", keystoneclient.ErrRejected))
			wantEC2Error(t, h.post(rejected, nil), 401, "AuthFailure", "")
			source.set(id, nil)
			wantEC2Error(t, h.post(rejected, nil), 400, "RequestExpired", "already used")
		})
	}
}

// A limited request's freed marker lets its signature through only within
// guard.ReuseWindow of its first use (the client's retry signed in the
// same second). A copy sent later, after the client's own retry (signed
// anew) has run, is a replay (found by a review: the marker was deleted,
// and the copy ran the client's one call a second time).
func TestLimitedRequestCopyIsAReplayAfterTheReuseWindow(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return testNow.Add(time.Duration(offset.Load())) }
	seen := guard.NewSeen(100)
	seen.SetClock(clock)
	h := newHarness(t, func(_ *configs.Config, o *Options) {
		o.Now = clock
		o.Guards = Guards{RateLimit: guard.NewRateLimit(1, 1, 100), Replay: seen}
	})
	at := func(d time.Duration) map[string]string {
		return map[string]string{"Version": "run", "Timestamp": testNow.Add(d).Format("2006-01-02T15:04:05Z")}
	}
	if resp := h.post(signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "other"}).Encode(), nil); resp.StatusCode != 200 {
		t.Fatalf("spending the token: %d", resp.StatusCode)
	}
	limited := signed("POST", h.host(), "/", testSecret, at(0)).Encode()
	wantEC2Error(t, h.post(limited, nil), 503, "RequestLimitExceeded", "")
	offset.Store(int64(500 * time.Millisecond)) // retried in the same second: the same bytes, still limited
	wantEC2Error(t, h.post(limited, nil), 503, "RequestLimitExceeded", "")
	offset.Store(int64(2 * time.Second)) // backed off, signed again
	if resp := h.post(signed("POST", h.host(), "/", testSecret, at(2*time.Second)).Encode(), nil); resp.StatusCode != 200 {
		t.Fatalf("the client's retry: %d %s", resp.StatusCode, bodyOf(resp))
	}
	offset.Store(int64(time.Minute)) // a copy of the limited request's bytes
	wantEC2Error(t, h.post(limited, nil), 400, "RequestExpired", "already used")
	runs := 0
	for _, r := range h.backend.Requests() {
		if strings.Contains(r.Body, "Version=run") {
			runs++
		}
	}
	if runs != 1 {
		t.Errorf("the backend ran the client's one call %d times", runs)
	}
}

// nonceReplayer marks every signature new, with nonce "n1", and records
// what it is asked to release.
type nonceReplayer struct{ released []string }

func (r *nonceReplayer) Mark(context.Context, []byte, string, time.Duration) (string, bool, error) {
	return "n1", true, nil
}

func (r *nonceReplayer) Release(_ context.Context, _ []byte, _, nonce string) error {
	r.released = append(r.released, nonce)
	return nil
}

// With Redis replay markers and a per-replica rate limit, a limited
// request's marker is released by the nonce its Mark returned.
func TestLimitedReleaseCarriesTheMarkersNonce(t *testing.T) {
	r := &nonceReplayer{}
	g := &Guards{Replay: r, RateLimit: guard.NewRateLimit(1, 1, 10)}
	ctx := context.Background()
	if a := g.admit(ctx, []byte("AK"), "fp1", time.Minute, testNow); a.verdict != guard.Admitted {
		t.Fatalf("first: %v", a.verdict)
	}
	if a := g.admit(ctx, []byte("AK"), "fp2", time.Minute, testNow); a.verdict != guard.Limited {
		t.Fatalf("second: %v", a.verdict)
	}
	if len(r.released) != 1 || r.released[0] != "n1" {
		t.Errorf("released %q; want the limited request's nonce, n1", r.released)
	}
}
