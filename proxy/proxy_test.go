package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/demobackend"
	"github.com/ec2proxy/ec2proxy/internal/rawsock"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/metrics"
	"github.com/ec2proxy/ec2proxy/sigv2"
)

const (
	testAccess = "0123456789abcdef0123456789abcdef"
	testSecret = "fedcba9876543210fedcba9876543210"
)

var testNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// memStore is a credential backend whose answers tests control.
type memStore struct {
	records map[string]credstore.Record
	err     atomic.Value // error to return instead, if set
	calls   atomic.Int64
}

func (m *memStore) Get(_ context.Context, key string) (credstore.Record, error) {
	m.calls.Add(1)
	if err, _ := m.err.Load().(error); err != nil {
		return credstore.Record{}, err
	}
	r, ok := m.records[key]
	if !ok {
		return credstore.Record{}, credstore.ErrNotFound
	}
	return r, nil
}

// fakeIdentity stands in for Keystone where faults must be injected.
type fakeIdentity struct {
	id    *keystoneclient.Identity
	err   error
	mu    sync.Mutex
	asked string // the last access key asked for
}

func (f *fakeIdentity) Identity(_ context.Context, accessKey string, _ *sigv2.Key) (*keystoneclient.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = accessKey
	return f.id, f.err
}

// set changes the answer while the server may be asking.
func (f *fakeIdentity) set(id *keystoneclient.Identity, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.id, f.err = id, err
}

type harness struct {
	t       *testing.T
	url     string // http://127.0.0.1:port
	backend *demobackend.Backend
	store   *memStore
	logs    *observer.ObservedLogs
	reg     *prometheus.Registry
	// backendURL is the harness's backend, as routes name it.
	backendURL string
}

type harnessOption func(*configs.Config, *Options)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, backend: &demobackend.Backend{}, reg: prometheus.NewRegistry()}
	backend := httptest.NewServer(h.backend)
	t.Cleanup(backend.Close)
	h.backendURL = backend.URL
	h.store = &memStore{records: map[string]credstore.Record{testAccess: {
		AccessKey: testAccess, Secret: testSecret, UserID: "u1", ProjectID: "p1", Enabled: true,
		UserName: "alice", ProjectName: "proj", Roles: []string{"member", "reader"},
	}}}
	cfg := configs.Default()
	cfg.Identity.Mode = configs.ModeStandalone
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: backend.URL}}
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	o := Options{Config: &cfg, Credentials: h.store, Metrics: metrics.New(h.reg, "test"), Logger: zap.New(core), Now: func() time.Time { return testNow }}
	for _, opt := range opts {
		opt(&cfg, &o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.RawSocketIO { // as app.ListenEC2 does
		ln = rawsock.Listener{Listener: ln}
	}
	go s.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	h.url = "http://" + ln.Addr().String()
	return h
}

// signed returns the form-encoded parameters of a request signed with
// SigV2 for host and path, on top of the given parameters.
func signed(method, host, path, secret string, params map[string]string) url.Values {
	base := map[string]string{
		"AWSAccessKeyId": testAccess, "Action": "DescribeRegions", "Version": "2016-11-15",
		"SignatureMethod": "HmacSHA256", "SignatureVersion": "2", "Timestamp": testNow.Format("2006-01-02T15:04:05Z"),
	}
	for k, v := range params {
		if v == "\x00delete" {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	var pairs []sigv2.Pair
	form := url.Values{}
	for k, v := range base {
		pairs = append(pairs, sigv2.Pair{Name: k, Value: v})
		form.Set(k, v)
	}
	m := sigv2.HmacSHA256
	if base["SignatureMethod"] == "HmacSHA1" {
		m = sigv2.HmacSHA1
	}
	if _, given := params["Signature"]; !given {
		form.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(m, sigv2.StringToSign(method, host, path, pairs)))
	}
	return form
}

func (h *harness) post(form string, header http.Header) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.url+"/", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for k, v := range header {
		req.Header[k] = v
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) *http.Response {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

func (h *harness) host() string { return strings.TrimPrefix(h.url, "http://") }

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return string(b)
}

func wantEC2Error(t *testing.T, resp *http.Response, status int, code, inMessage string) {
	t.Helper()
	body := bodyOf(resp)
	if resp.StatusCode != status || !strings.Contains(body, "<Code>"+code+"</Code>") {
		t.Fatalf("got %d %s; want %d with code %s", resp.StatusCode, body, status, code)
	}
	if !strings.Contains(body, inMessage) {
		t.Errorf("message lacks %q: %s", inMessage, body)
	}
	if id := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(id, "req-") || !strings.Contains(body, "<RequestID>"+id+"</RequestID>") {
		t.Errorf("request id %q missing from header or body: %s", id, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestForwardsVerifiedRequestWithIdentity(t *testing.T) {
	h := newHarness(t)
	form := signed("POST", h.host(), "/", testSecret, nil).Encode()
	spoofed := http.Header{
		"X-Auth-Token": {"evil"}, "X-Roles": {"admin"}, "X-User-Id": {"root"}, "X-Project-Id": {"other"},
		"X-Identity-Status": {"Confirmed"}, "X-Tenant-Id": {"t"}, "X-Service-Catalog": {"[]"},
		"X-Forwarded-For": {"6.6.6.6"}, "X-Is-Admin-Project": {"False"}, "Openstack-System-Scope": {"all"},
		"X-Custom": {"kept"}, "Connection": {"X-Drop-Me"}, "X-Drop-Me": {"hop"},
	}
	resp := h.post(form, spoofed)
	if resp.StatusCode != 200 || !strings.Contains(bodyOf(resp), "RegionOne") {
		t.Fatalf("got %d %s", resp.StatusCode, bodyOf(resp))
	}
	got, ok := h.backend.Last()
	if !ok {
		t.Fatal("backend saw nothing")
	}
	want := map[string]string{
		"X-Identity-Status": "Confirmed", "X-User-Id": "u1", "X-User-Name": "alice", "X-Project-Id": "p1",
		"X-Project-Name": "proj", "X-Roles": "member,reader", "X-Tenant-Id": "p1", "X-Custom": "kept",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Is-Admin-Project": "True", // ours, not the client's
		"X-Request-Id": resp.Header.Get("X-Request-Id"),
	}
	for k, v := range want {
		if g := got.Header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("backend header %s = %q; want [%q]", k, g, v)
		}
	}
	for _, k := range []string{"X-Auth-Token", "X-Service-Catalog", "Openstack-System-Scope", "X-Drop-Me"} {
		if g := got.Header.Values(k); len(g) != 0 {
			t.Errorf("backend got client-chosen header %s = %q", k, g)
		}
	}
	if got.Body != form {
		t.Errorf("body changed:\n got %q\nwant %q", got.Body, form)
	}
}

func TestForwardsGETQueryUnchanged(t *testing.T) {
	h := newHarness(t)
	q := signed("GET", h.host(), "/services/Cloud/", testSecret, map[string]string{"Filter.1.Value.1": "a b;c~d*"}).Encode()
	q = strings.ReplaceAll(q, "+", "%20")
	req, _ := http.NewRequest(http.MethodGet, h.url+"/services/Cloud/?"+q, nil)
	resp := h.do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, bodyOf(resp))
	}
	got, _ := h.backend.Last()
	if got.URI != "/services/Cloud/?"+q {
		t.Errorf("backend URI = %q; want %q", got.URI, "/services/Cloud/?"+q)
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t)
	host := h.host()
	tests := []struct {
		name       string
		form       string
		status     int
		code, text string
	}{
		{"wrong secret", signed("POST", host, "/", "nope", nil).Encode(), 403, "SignatureDoesNotMatch", "POST\n" + host + "\n/\nAWSAccessKeyId="},
		{"tampered parameter", strings.Replace(signed("POST", host, "/", testSecret, nil).Encode(), "DescribeRegions", "DescribeInstances", 1), 403, "SignatureDoesNotMatch", "Action=DescribeInstances"},
		{"unknown key", signed("POST", host, "/", testSecret, map[string]string{"AWSAccessKeyId": "unknown"}).Encode(), 401, "AuthFailure", "unknown or disabled"},
		{"expired", signed("POST", host, "/", testSecret, map[string]string{"Timestamp": "2026-11-25T09:54:59Z"}).Encode(), 400, "RequestExpired", "before the server time"},
		{"future", signed("POST", host, "/", testSecret, map[string]string{"Timestamp": "2026-11-25T10:05:01Z"}).Encode(), 400, "RequestExpired", "after the server time"},
		{"expires passed", signed("POST", host, "/", testSecret, map[string]string{"Timestamp": "\x00delete", "Expires": "2026-11-25T09:59:59Z"}).Encode(), 400, "RequestExpired", "Expires"},
		{"both timestamp and expires", signed("POST", host, "/", testSecret, map[string]string{"Expires": "2026-11-25T10:01:00Z"}).Encode(), 400, "InvalidParameterCombination", "not both"},
		{"signature version 1", signed("POST", host, "/", testSecret, map[string]string{"SignatureVersion": "1"}).Encode(), 400, "InvalidParameterValue", "SignatureVersion 2"},
		{"signature version 0", signed("POST", host, "/", testSecret, map[string]string{"SignatureVersion": "0"}).Encode(), 400, "InvalidParameterValue", "Signature Version 4"},
		{"missing action", signed("POST", host, "/", testSecret, map[string]string{"Action": "\x00delete"}).Encode(), 400, "MissingParameter", "Action"},
		{"missing signature", signed("POST", host, "/", testSecret, map[string]string{"Signature": ""}).Encode()[0:0] + "AWSAccessKeyId=x&Action=A&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10:00:00Z", 400, "MissingParameter", "Signature"},
		{"duplicate action", signed("POST", host, "/", testSecret, nil).Encode() + "&Action=TerminateInstances", 400, "MalformedQueryString", "Action is given more than once"},
		{"bad percent-encoding", signed("POST", host, "/", testSecret, nil).Encode() + "&X=%G1", 400, "MalformedQueryString", "percent-encoding"},
		{"not base64", signed("POST", host, "/", testSecret, map[string]string{"Signature": "!!!"}).Encode(), 400, "IncompleteSignature", "base64"},
		{"md5", signed("POST", host, "/", testSecret, map[string]string{"SignatureMethod": "HmacMD5"}).Encode(), 400, "InvalidParameterValue", "HmacSHA256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.backend.Reset()
			wantEC2Error(t, h.post(tt.form, nil), tt.status, tt.code, tt.text)
			if n := len(h.backend.Requests()); n != 0 {
				t.Errorf("backend received %d requests; want none", n)
			}
		})
	}
}

func TestDisabledCredentialIsAuthFailure(t *testing.T) {
	h := newHarness(t)
	r := h.store.records[testAccess]
	r.Enabled = false
	h.store.records[testAccess] = r
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 401, "AuthFailure", "")
}

func TestStoreUnavailableIs503(t *testing.T) {
	h := newHarness(t)
	h.store.err.Store(fmt.Errorf("%w: redis: connection refused", credstore.ErrUnavailable))
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 503, "ServiceUnavailable", "credential store")
}

// A secret sealed with a key this replica lacks (a rotation rolled out
// to the writers first) is the replica's misconfiguration: 503 and the
// cause logged, not AuthFailure for a client whose credential is sound.
func TestMissingEncryptionKeyIs503(t *testing.T) {
	h := newHarness(t)
	h.store.err.Store(fmt.Errorf("%w (key id 0a1b2c3d)", credstore.ErrNoKey))
	wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 503, "ServiceUnavailable", "credential store")
}

func TestIdentityFailures(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"rejected by keystone", fmt.Errorf("%w: 401", keystoneclient.ErrRejected), 401, "AuthFailure"},
		{"keystone down", fmt.Errorf("%w: connection refused", keystoneclient.ErrUnavailable), 503, "ServiceUnavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(_ *configs.Config, o *Options) { o.Identity = &fakeIdentity{err: tt.err} })
			wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), tt.status, tt.code, "")
		})
	}
}

func TestKeystoneIdentityHeaders(t *testing.T) {
	id := keystoneclient.NewIdentity("gAAAAtoken", time.Time{}, &keystoneclient.Subject{UserID: "ku", ProjectID: "kp", RolesHeader: "member", UserDomainID: "d1", ProjectDomainID: "d2", TrustID: "tr"})
	source := &fakeIdentity{id: id}
	h := newHarness(t, func(_ *configs.Config, o *Options) { o.Identity = source })
	resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), http.Header{"X-Auth-Token": {"spoofed"}})
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %s", resp.StatusCode, bodyOf(resp))
	}
	// The token is the request's access key's (asked for with the
	// credential cache's copy of it).
	source.mu.Lock()
	asked := source.asked
	source.mu.Unlock()
	if asked != testAccess {
		t.Errorf("identity asked for access key %q, want %q", asked, testAccess)
	}
	got, _ := h.backend.Last()
	for k, v := range map[string]string{"X-Auth-Token": "gAAAAtoken", "X-User-Id": "ku", "X-Project-Id": "kp", "X-Roles": "member", "X-User-Domain-Id": "d1", "X-Project-Domain-Id": "d2", "X-Trust-Id": "tr"} {
		if g := got.Header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("backend header %s = %q; want [%q]", k, g, v)
		}
	}
}

func TestTransportLimits(t *testing.T) {
	h := newHarness(t, func(c *configs.Config, _ *Options) { c.Server.MaxBodyBytes = 2048 })
	big := signed("POST", h.host(), "/", testSecret, map[string]string{"UserData": strings.Repeat("A", 4096)}).Encode()
	wantEC2Error(t, h.post(big, nil), 413, "RequestEntityTooLarge", "2048 bytes")

	req, _ := http.NewRequest(http.MethodPut, h.url+"/", nil)
	wantEC2Error(t, h.do(req), 405, "InvalidRequest", "GET and POST")
}

func TestNoRoute(t *testing.T) {
	h := newHarness(t, func(c *configs.Config, _ *Options) {
		c.Routes[0].PathPrefix = "/services/Cloud/"
	})
	req, _ := http.NewRequest(http.MethodGet, h.url+"/other", nil)
	wantEC2Error(t, h.do(req), 404, "InvalidRequest", "/other")
}

func TestBackendFailures(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		h := newHarness(t, func(c *configs.Config, _ *Options) { c.Routes[0].Backend = "http://" + addr })
		wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 502, "BadGateway", "")
	})
	t.Run("slow", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release) // runs first: lets the handler return so Close does not wait
		h := newHarness(t, func(c *configs.Config, _ *Options) {
			c.Routes[0].Backend = slow.URL
			c.Backend.Timeout = 200 * time.Millisecond
		})
		start := time.Now()
		wantEC2Error(t, h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil), 504, "GatewayTimeout", "")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v; the backend timeout is 200ms", d)
		}
	})
}

func TestCredentialCachedAcrossRequests(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		if resp := h.post(signed("POST", h.host(), "/", testSecret, nil).Encode(), nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	if n := h.store.calls.Load(); n != 1 {
		t.Errorf("store read %d times for 5 requests; want 1", n)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	id := keystoneclient.NewIdentity("gAAAAsecrettoken", time.Time{}, &keystoneclient.Subject{UserID: "ku", ProjectID: "kp"})
	h := newHarness(t, func(c *configs.Config, o *Options) {
		o.Identity = &fakeIdentity{id: id}
		c.Log.Access = true
	})
	good := signed("POST", h.host(), "/", testSecret, nil)
	bad := signed("POST", h.host(), "/", "wrong-secret-value", nil)
	h.post(good.Encode(), nil)
	h.post(bad.Encode(), nil)
	var all strings.Builder
	for _, e := range h.logs.All() {
		fmt.Fprintf(&all, "%s %v\n", e.Message, e.ContextMap())
	}
	for _, secret := range []string{testSecret, "wrong-secret-value", good.Get("Signature"), bad.Get("Signature"), "gAAAAsecrettoken"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, all.String())
		}
	}
	if !strings.Contains(all.String(), "SignatureDoesNotMatch") {
		t.Errorf("the rejection was not logged:\n%s", all.String())
	}
}

// A request fasthttp cannot parse (HTTP/1.1 without Host) is logged by its
// error alone: fasthttp's parse errors quote the request unless told not
// to, and this one's query and headers carry a signature and a session
// token.
func TestUnparsableRequestLogsNoSignature(t *testing.T) {
	h := newHarness(t)
	conn, err := net.Dial("tcp", h.host())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sig, token = "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl", "SESSIONTOKENSECRET"
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /?Action=DescribeInstances&AWSAccessKeyId="+testAccess+"&Signature="+sig+" HTTP/1.1\r\n"+
		"Authorization: AWS4-HMAC-SHA256 Credential=AK/20261125/r/ec2/aws4_request, SignedHeaders=host, Signature="+sig+"\r\n"+
		"X-Amz-Security-Token: "+token+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 {
		t.Errorf("status %d; want 400", resp.StatusCode)
	}
	var all strings.Builder
	for _, e := range h.logs.All() {
		fmt.Fprintf(&all, "%s %v\n", e.Message, e.ContextMap())
	}
	if strings.Contains(all.String(), sig) || strings.Contains(all.String(), token) {
		t.Errorf("logs quote the request:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "InvalidRequest") && !strings.Contains(all.String(), "rejected") {
		t.Errorf("the refusal was not logged:\n%s", all.String())
	}
}
