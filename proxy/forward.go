package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/rawsock"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// route sends a path prefix to one backend.
type route struct {
	prefix  string
	client  *fasthttp.HostClient
	timeout time.Duration
}

// newRoute builds r's client; connectFailed counts its failed dials.
func newRoute(r configs.Route, b *configs.Backend, rawSocketIO bool, connectFailed func(backend string)) (route, error) {
	u, err := url.Parse(r.Backend)
	if err != nil {
		return route{}, fmt.Errorf("proxy: backend %q: %w", r.Backend, err)
	}
	isTLS := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		addr += map[bool]string{true: ":443", false: ":80"}[isTLS]
	}
	var tlsConfig *tls.Config
	if isTLS {
		tlsConfig, err = configs.ClientTLS(b.TLS)
		if err != nil {
			return route{}, fmt.Errorf("proxy: backend %q: %w", r.Backend, err)
		}
	}
	dialTimeout := b.DialTimeout
	return route{
		prefix:  r.PathPrefix,
		timeout: b.Timeout,
		client: &fasthttp.HostClient{
			Addr:                          addr,
			IsTLS:                         isTLS,
			TLSConfig:                     tlsConfig,
			MaxConns:                      b.MaxConns,
			MaxIdleConnDuration:           b.IdleTimeout,
			ReadTimeout:                   b.Timeout,
			WriteTimeout:                  b.Timeout,
			MaxConnWaitTimeout:            dialTimeout,
			DisablePathNormalizing:        true, // forward the path that was verified
			DisableHeaderNamesNormalizing: true,
			NoDefaultUserAgentHeader:      true,
			// Query API GETs are not idempotent (RunInstances,
			// TerminateInstances): never send a request twice.
			MaxIdemponentCallAttempts: 1,
			MaxResponseBodySize:       64 << 20,
			Dial: func(addr string) (net.Conn, error) {
				c, err := fasthttp.DialTimeout(addr, dialTimeout)
				if err != nil && backendRefused(err) {
					connectFailed(addr)
				}
				if err == nil && rawSocketIO {
					c = rawsock.Wrap(c)
				}
				return c, err
			},
		},
	}, nil
}

func (rt *route) addr() string { return rt.client.Addr }

// route returns the backend for path: the longest matching prefix.
func (s *Server) route(path []byte) *route {
	for i := range s.routes {
		if strings.HasPrefix(string(path), s.routes[i].prefix) { // no allocation
			return &s.routes[i]
		}
	}
	return nil
}

// forward sends the verified request to the backend with the identity
// headers, and copies the answer back.
func (s *Server) forward(ctx *fasthttp.RequestCtx, st *state, rt *route, cred *credential, id *keystoneclient.Identity) outcome {
	st.identity = id
	s.prepareForward(ctx, st, id)
	// The backend answers straight into the client's response: no copy.
	req, resp := &st.out, &ctx.Response
	if rt.client.IsTLS {
		req.URI().SetScheme("https") // HostClient refuses a request whose scheme is not its own
	}
	resp.Reset()

	start := time.Now()
	err := rt.client.DoTimeout(req, resp, rt.timeout)
	took := time.Since(start)
	if err == nil && s.mayRetry(st, resp) && s.tokenReplaced(ctx, st, id) {
		s.m.backendDone(resp.StatusCode(), nil, took)
		return s.afterAdmission(ctx, st, rt, cred) // with the new token, which policy judges again
	}
	return s.forwarded(ctx, st, rt, err, took)
}

// prepareForward builds the backend's request in st.out.
func (s *Server) prepareForward(ctx *fasthttp.RequestCtx, st *state, id *keystoneclient.Identity) {
	req := &st.out
	req.Reset()
	req.Header.DisableNormalizing()
	req.Header.SetMethodBytes(ctx.Method())
	req.SetRequestURIBytes(ctx.Request.Header.RequestURI())

	connection := ctx.Request.Header.Peek(fasthttp.HeaderConnection)
	for name, value := range ctx.Request.Header.All() {
		if notForwarded(name, value, connection) {
			continue
		}
		req.Header.AddBytesKV(name, value)
	}
	if st.retype {
		req.Header.SetContentType(formContentType)
	}
	req.SetBodyRaw(ctx.Request.Body()) // valid for the whole (synchronous) call
	s.setForwardedFor(ctx, req)
	st.scratch = setIdentity(&req.Header, id, st.scratch[:0])
	req.Header.SetBytesV(headerRequestID, st.requestID)
	req.Header.SetBytesV("X-OpenStack-Request-ID", st.requestID) // oslo records it as global_request_id
}

// forwarded finishes a request the backend answered into ctx.Response, or
// failed with err.
func (s *Server) forwarded(ctx *fasthttp.RequestCtx, st *state, rt *route, err error, took time.Duration) outcome {
	resp := &ctx.Response
	s.m.backendDone(resp.StatusCode(), err, took)
	if err != nil {
		code := errBadGateway
		if isTimeout(err) {
			code = errGatewayTimeout
		}
		return s.fail(ctx, st, code, "", fmt.Errorf("backend %s: %w", rt.addr(), err))
	}
	s.backendAnswered(st, resp.StatusCode())
	return s.relayAnswer(st, resp)
}

// relayAnswer readies the backend's answer to st, in resp, for the client.
func (s *Server) relayAnswer(st *state, resp *fasthttp.Response) outcome {
	st.scratch = dropNotRelayed(&resp.Header, st.scratch[:0])
	resp.Header.SetBytesV(headerRequestID, st.requestID)
	if s.log.Core().Enabled(zap.DebugLevel) {
		s.log.Debug("forwarded", zap.ByteString("request_id", st.requestID), zap.Int("status", resp.StatusCode()))
	}
	return outcomeForwarded
}

// backendAnswered looks at the status of the backend's answer to st. A 401
// may mean Keystone revoked the token sent (see
// keystoneclient.Client.BackendRejected), unless tokenReplaced asked
// about it already.
func (s *Server) backendAnswered(st *state, status int) {
	if status != fasthttp.StatusUnauthorized || st.identity == nil || st.identity == st.checked {
		return
	}
	if r, ok := s.identity.(rejectedTokens); ok && r.BackendRejected(string(st.accessKey()), st.identity) {
		s.log.Info("the backend refused the token sent for this access key: asking Keystone whether it was revoked",
			zap.ByteString("request_id", st.requestID), zap.ByteString("access_key", st.accessKey()))
	}
}

// mayRetry reports whether the backend's answer to st may be a refusal of
// a token Keystone revoked, one the request can be sent again after:
// keystonemiddleware auth_token's own 401, which refuses authentication
// before the application acts, so sending it again does nothing twice.
// auth_token marks every 401 that passes it ("WWW-Authenticate: Keystone
// uri=..."), the application's too, which may come after it acted (a call
// to another service refused): its own is known by its body as well, JSON
// {"error": {"code": 401, "title": "Unauthorized", ...}}, where an EC2
// application answers XML (found by a review). A request is sent again
// once at most.
func (s *Server) mayRetry(st *state, resp *fasthttp.Response) bool {
	if !st.mayResendAfter(resp.StatusCode()) {
		return false
	}
	if _, ok := s.identity.(rejectedTokens); !ok {
		return false
	}
	return markedByAuthToken(&resp.Header) && isAuthTokenRefusal(resp.Body())
}

// mayResendAfter is mayRetry's cheap part, on the status alone: a 401 to
// a request sent with an identity, not sent again already.
func (st *state) mayResendAfter(status int) bool {
	return status == fasthttp.StatusUnauthorized && !st.retried && st.identity != nil
}

// markedByAuthToken reports auth_token's WWW-Authenticate header, in any
// case: the pipelines keep header names as the backend wrote them (Go's
// net/http writes "Www-Authenticate"), and Peek matches exactly.
func markedByAuthToken(h *fasthttp.ResponseHeader) bool {
	for k, v := range h.All() {
		if bytes.EqualFold(k, []byte(fasthttp.HeaderWWWAuthenticate)) {
			scheme, _, _ := bytes.Cut(bytes.TrimSpace(v), []byte(" "))
			if bytes.EqualFold(scheme, []byte("Keystone")) {
				return true
			}
		}
	}
	return false
}

// isAuthTokenRefusal reports the body of auth_token's own 401 (its
// message is translated, and was "Authentication required" in older
// releases; code and title are not).
func isAuthTokenRefusal(body []byte) bool {
	if len(body) > 4<<10 {
		return false
	}
	var refusal struct {
		Error struct {
			Code  int    `json:"code"`
			Title string `json:"title"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &refusal) == nil && refusal.Error.Code == fasthttp.StatusUnauthorized && refusal.Error.Title == "Unauthorized"
}

// tokenReplaced waits for Keystone's word on id's token, which a backend
// refused for st's request, and reports whether the request is to be sent
// again with a new one: Keystone revoked it (a password change revokes
// every token of the user) and it was dropped. Its client would otherwise
// get the backend's 401.
func (s *Server) tokenReplaced(ctx *fasthttp.RequestCtx, st *state, id *keystoneclient.Identity) bool {
	st.retried, st.checked = true, id
	if !s.identity.(rejectedTokens).Replaced(ctx, string(st.accessKey()), id) {
		return false
	}
	s.log.Info("the backend refused the token sent for this access key, which Keystone revoked: sending the request again with a new token",
		zap.ByteString("request_id", st.requestID), zap.ByteString("access_key", st.accessKey()))
	return true
}

// relayRefusal answers st's request with the refusal the event loop
// handed over, as it would have.
func (s *Server) relayRefusal(ctx *fasthttp.RequestCtx, st *state) outcome {
	st.refusal.CopyTo(&ctx.Response)
	return s.relayAnswer(st, &ctx.Response)
}

// rejectedTokens is an IdentitySource that can be told a backend refused
// one of its tokens (*keystoneclient.Client).
type rejectedTokens interface {
	BackendRejected(accessKey string, id *keystoneclient.Identity) bool
	Replaced(ctx context.Context, accessKey string, id *keystoneclient.Identity) bool
}

// dropNotRelayed deletes the backend's headers the client must not get
// (see notRelayed) from h, whatever their case: both pipelines keep names
// as the backend wrote them, and fasthttp's Del matches them exactly. The
// backend's Connection: close is kept (fasthttp holds it as a flag: the
// client's connection closes after the answer, as before). scratch is
// returned for reuse.
func dropNotRelayed(h *fasthttp.ResponseHeader, scratch []byte) []byte {
	closing := h.ConnectionClose() // deleting a "Connection: close, X" header clears it
	defer func() {
		if closing {
			h.SetConnectionClose()
		}
	}()
	for k, v := range h.All() {
		if bytes.EqualFold(k, []byte("connection")) {
			scratch = append(append(scratch, v...), ',')
		}
	}
	connection := len(scratch)
	for k, v := range h.All() {
		if notRelayed(k, scratch[:connection]) && !(bytes.EqualFold(k, []byte("connection")) && bytes.EqualFold(v, []byte("close"))) {
			scratch = append(append(scratch, k...), '\n') // names are tokens: no line feeds
		}
	}
	for name := range bytes.SplitSeq(scratch[connection:], []byte{'\n'}) {
		if len(name) > 0 {
			h.DelBytes(name)
		}
	}
	return scratch
}

// setIdentity sets the headers keystonemiddleware's auth_token would set, so
// an OpenStack EC2 backend needs no change. Add, not Set: every client
// header of these names was dropped already, so there is nothing to replace
// and no need to scan the headers for each. The token is unpacked into
// scratch, which is returned for reuse.
func setIdentity(h *fasthttp.RequestHeader, id *keystoneclient.Identity, scratch []byte) []byte {
	h.Add("X-Identity-Status", "Confirmed")
	if scratch = id.AppendToken(scratch[:0]); len(scratch) > 0 {
		h.AddBytesV("X-Auth-Token", scratch)
	}
	for _, kv := range identityHeaders(id) {
		if kv[1] != "" {
			h.Add(kv[0], kv[1])
		}
	}
	return scratch
}

// identityHeaders are the identity headers besides the status and the
// token, by name and value; an empty value is not sent.
func identityHeaders(id *keystoneclient.Identity) [15][2]string {
	return [...][2]string{
		{"X-User-Id", id.UserID}, {"X-User-Name", id.UserName}, {"X-User-Domain-Id", id.UserDomainID},
		{"X-User-Domain-Name", id.UserDomainName}, {"X-Project-Id", id.ProjectID}, {"X-Project-Name", id.ProjectName},
		{"X-Project-Domain-Id", id.ProjectDomainID}, {"X-Project-Domain-Name", id.ProjectDomainName},
		{"X-Tenant-Id", id.ProjectID}, {"X-Tenant-Name", id.ProjectName}, // deprecated aliases, still read by older services
		{"X-Roles", id.RolesHeader}, {"X-Trust-Id", id.TrustID}, {"X-Trustor-Id", id.TrustorID}, {"X-Trustee-Id", id.TrusteeID},
		// Always, as keystonemiddleware: a missing one is True to
		// oslo.context, which a policy's is_admin_project:True would take
		// for an admin's token in any project (found by a review).
		{"X-Is-Admin-Project", adminProjectHeader(id.NotAdminProject)},
	}
}

func adminProjectHeader(notAdminProject bool) string {
	if notAdminProject {
		return "False"
	}
	return "True"
}

// setForwardedFor sets X-Forwarded-For and X-Forwarded-Proto. A trusted
// balancer's values are kept and extended; anyone else's were dropped.
func (s *Server) setForwardedFor(ctx *fasthttp.RequestCtx, req *fasthttp.Request) {
	var b [128]byte
	xff, proto := s.forwardedFor(b[:0], ctx)
	req.Header.SetBytesV(headerForwardedFor, xff)
	req.Header.SetBytesV("X-Forwarded-Proto", proto)
}

var protoHTTP, protoHTTPS = []byte("http"), []byte("https")

// forwardedFor appends the X-Forwarded-For value to dst and returns the
// X-Forwarded-Proto value.
func (s *Server) forwardedFor(dst []byte, ctx *fasthttp.RequestCtx) ([]byte, []byte) {
	peer := remoteAddr(ctx)
	proto := protoHTTP
	if ctx.IsTLS() {
		proto = protoHTTPS
	}
	if s.peerTrusted(ctx) {
		// Every header, in order: haproxy's "option forwardfor" adds one
		// of its own after any the client sent.
		for _, prior := range ctx.Request.Header.PeekAll(headerForwardedFor) {
			if prior = bytes.TrimSpace(prior); len(prior) > 0 {
				dst = append(append(dst, prior...), ", "...)
			}
		}
		if p := lastForwarded(&ctx.Request.Header, "X-Forwarded-Proto"); len(p) > 0 {
			proto = p
		}
	}
	return peer.AppendTo(dst), proto
}

// lastForwarded is the last entry of a trusted balancer's header name: the
// nearest balancer's, whether it replaced the client's header, appended to
// it, or added its own after it (haproxy's "http-request add-header").
func lastForwarded(h *fasthttp.RequestHeader, name string) []byte {
	all := h.PeekAll(name)
	for i := len(all) - 1; i >= 0; i-- {
		v := all[i]
		if j := bytes.LastIndexByte(v, ','); j >= 0 {
			v = v[j+1:]
		}
		if v = bytes.TrimSpace(v); len(v) > 0 {
			return v
		}
	}
	return nil
}

// signedHost is the host the client signed: the Host header, or the first
// X-Forwarded-Host when a trusted balancer rewrote Host on the way (the
// client signed the name it connected to). From anyone else X-Forwarded-Host
// is ignored: it would let a client pick the host it is verified against.
func (s *Server) signedHost(ctx *fasthttp.RequestCtx) []byte {
	host := ctx.Request.Header.Host()
	if len(s.trusted) == 0 {
		return host
	}
	fwd := ctx.Request.Header.Peek("X-Forwarded-Host")
	if len(fwd) == 0 || !s.peerTrusted(ctx) {
		return host
	}
	if i := bytes.IndexByte(fwd, ','); i >= 0 { // appended by further proxies
		fwd = fwd[:i]
	}
	if fwd = bytes.TrimSpace(fwd); len(fwd) == 0 {
		return host
	}
	return fwd
}

// backendRefused reports a connect error of the backend's (or the
// network's) doing: refused, unreachable, or not connected within
// dial_timeout (Go's i/o timeout, or fasthttp's ErrDialTimeout); not a
// failed name lookup or a local shortage (EMFILE, or EAGAIN: no port
// left, which net.Error calls a timeout). Both pipelines count, and the
// event loop passes an address over, by it.
func backendRefused(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.ETIMEDOUT) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, fasthttp.ErrDialTimeout)
}

// isTimeout reports a backend that did not connect or answer in time:
// fasthttp says so with either of two errors, or a net.Error.
func isTimeout(err error) bool {
	if err == nil {
		return false // before ne, which escapes: the warm path asks too
	}
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.As(err, &ne) && ne.Timeout()
}

// otherHosts lists, when a trusted balancer sent X-Forwarded-Host (then
// signedHost's answer, first), the other names the client may have signed:
// X-Forwarded-Host with X-Forwarded-Port added (a balancer sending them
// apart; a default port is never signed), and the Host header (a balancer
// that kept it and sent X-Forwarded-Host without the port, as nginx's
// $host is). SigV4 clients leave out a default port that a balancer may
// add: forV4 also lists each name ending in :80 or :443 without it (SigV2
// tries every host without its port anyway). Nothing is allocated once
// st's buffers have grown.
func (s *Server) otherHosts(ctx *fasthttp.RequestCtx, st *state, first []byte, forV4 bool) [][]byte {
	st.hosts = st.hosts[:0]
	h := &ctx.Request.Header
	if len(s.trusted) == 0 || len(h.Peek("X-Forwarded-Host")) == 0 || !s.peerTrusted(ctx) {
		return nil // no balancer's names to try
	}
	if port := lastForwarded(h, "X-Forwarded-Port"); len(port) > 0 && portStart(first) < 0 && !isDefaultPort(port, s.forwardedTLS(ctx)) {
		st.hostBuf = append(append(append(st.hostBuf[:0], first...), ':'), port...)
		st.hosts = append(st.hosts, st.hostBuf)
	}
	if host := h.Host(); !bytes.Equal(host, first) && s.hostAllowed(host) { // first was checked by serve
		st.hosts = append(st.hosts, host)
	}
	if forV4 {
		n := len(st.hosts)
		for i := -1; i < n; i++ {
			c := first
			if i >= 0 {
				c = st.hosts[i]
			}
			if p := portStart(c); p >= 0 && (string(c[p+1:]) == "80" || string(c[p+1:]) == "443") {
				st.hosts = append(st.hosts, c[:p])
			}
		}
	}
	return st.hosts
}

// forwardedTLS reports whether the client reached the balancer (or this
// listener) over TLS, for the default port.
func (s *Server) forwardedTLS(ctx *fasthttp.RequestCtx) bool {
	if p := lastForwarded(&ctx.Request.Header, "X-Forwarded-Proto"); len(p) > 0 {
		return bytes.EqualFold(p, protoHTTPS)
	}
	return ctx.IsTLS()
}

func isDefaultPort(port []byte, tls bool) bool {
	if tls {
		return string(port) == "443"
	}
	return string(port) == "80"
}

// portStart is the index of the ':' before a host's port, or -1 (a
// bracketed IPv6 address's colons are not one).
func portStart(host []byte) int {
	i := bytes.LastIndexByte(host, ':')
	if i < 0 || bytes.IndexByte(host[i:], ']') >= 0 {
		return -1
	}
	return i
}

// hostOverride shows SigV4 the request's headers with Host replaced by the
// forwarded host (nil: no replacement).
type hostOverride struct {
	h    *fasthttp.RequestHeader
	host []byte
}

func (o *hostOverride) PeekBytes(name []byte) []byte {
	if o.host != nil && bytes.EqualFold(name, []byte("host")) {
		return o.host
	}
	return o.h.PeekBytes(name)
}

const headerForwardedFor = "X-Forwarded-For"

// clientAddr is the client's address: the peer's, or from a trusted
// balancer the last X-Forwarded-For entry that no trusted balancer wrote
// (entries before it are whatever the client sent). An entry that is not
// an address ends the walk at the last trusted hop.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	client := remoteAddr(ctx)
	if !s.peerTrusted(ctx) {
		return client
	}
	all := ctx.Request.Header.PeekAll(headerForwardedFor)
	for i := len(all) - 1; i >= 0; i-- {
		for list := all[i]; len(list) > 0; {
			j := bytes.LastIndexByte(list, ',')
			entry := bytes.TrimSpace(list[j+1:])
			list = list[:max(j, 0)]
			if len(entry) == 0 {
				continue
			}
			a, ok := parseForwardedAddr(entry)
			if !ok {
				return client
			}
			if client = a; !s.isTrusted(a) {
				return a
			}
		}
	}
	return client
}

// parseForwardedAddr reads an X-Forwarded-For entry: an address, or one
// with a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(string(b)); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(string(b)); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func remoteAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	return a.Unmap()
}

// peerTrusted reports whether the connection's peer is a trusted balancer
// whose X-Forwarded-* are kept: one of server.trusted_proxies, and not a
// connection whose PROXY header named no client (its peer is then the
// balancer itself, relaying the client's own headers untouched).
func (s *Server) peerTrusted(ctx *fasthttp.RequestCtx) bool {
	if !s.isTrusted(remoteAddr(ctx)) {
		return false
	}
	c := ctx.Conn()
	for {
		if u, ok := c.(interface{ Unaddressed() bool }); ok {
			return !u.Unaddressed()
		}
		inner, ok := c.(interface{ NetConn() net.Conn }) // TLS over the PROXY listener
		if !ok {
			return true
		}
		c = inner.NetConn()
	}
}

func (s *Server) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
