package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/policy"
	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// state is the per-request scratch, pooled so that the warm path does not
// allocate.
type state struct {
	version   int // signature version of the request, once known
	v2        sigv2.Request
	v4        sigv4.Request
	out       fasthttp.Request
	headers   hostOverride // the request's headers, as SigV4 sees them
	creds     policy.Creds
	target    policy.Target
	requestID []byte
	scratch   []byte
	hosts     [][]byte // otherHosts' candidates, and the bytes of one
	hostBuf   []byte
	// inLoop: served by the event loop, which must not block: lookups are
	// cache-only; a refusal that needs no Redis is answered, anything that
	// would wait hands the request over instead.
	inLoop bool
	peeked bool // the loop's credential came from the cache (a hit to count)
	// verified: this pass observed the verification's duration; counted:
	// the loop's pass did that (verified), or counted its cache hits too
	// (hitsCounted), so a second pass on a goroutine does not again.
	verified, verifiedBefore, hitsCounted bool
	route                                 *route      // the event loop's backend for a forwarded request
	cred                                  *credential // the verified request's, while the loop asks the guards
	admitted                              bool        // the guards after verification admitted it already
	// markerNonce is what the replay marker the request set holds (guard
	// nonces), for releasing it.
	markerNonce string
	identity    *keystoneclient.Identity
	now         time.Time // the request's one clock reading (requestTime), zero until read
	// retried: the request was sent again with a new token after a backend
	// refused its first (see tokenReplaced), or it will not be.
	retried bool
	// retype: the form body goes to the backend as formContentType, not as
	// the client typed it (webobReadsForm). Only there: a second pass
	// verifies the client's, which SigV4 may have signed.
	retype bool
	// refusal is a loop backend's 401 to the request, sent with refused's
	// token, that the event loop handed over to be sent again (see
	// EventLoop.handOverRefusal).
	refusal *fasthttp.Response
	refused *keystoneclient.Identity
	checked *keystoneclient.Identity // the one tokenReplaced asked about
}

func (st *state) reset() {
	st.version = 0
	st.inLoop, st.peeked, st.admitted, st.markerNonce = false, false, false, ""
	st.verified, st.verifiedBefore, st.hitsCounted = false, false, false
	st.identity, st.cred, st.route = nil, nil, nil
	st.retried, st.refusal, st.refused, st.checked = false, nil, nil, nil
	st.retype = false
	st.now = time.Time{}
	st.v2.Reset()
	st.requestID = st.requestID[:0]
	st.scratch = st.scratch[:0]
}

// requestTime is the time the request is judged at: read once (a clock
// read costs ~100 ns on a virtual machine), or set by the event loop from
// its own reading when the server runs on the real clock.
func (s *Server) requestTime(st *state) time.Time {
	if st.now.IsZero() {
		st.now = s.now()
	}
	return st.now
}

// accessKey and action are the request's, for logs, whichever the version.
func (st *state) accessKey() []byte {
	if st.version == 4 {
		return st.v4.AccessKeyID()
	}
	return st.v2.AccessKeyID()
}

func (st *state) signature() []byte {
	if st.version == 4 {
		return st.v4.Signature()
	}
	return st.v2.Signature()
}

func (st *state) action() []byte {
	if st.version == 4 {
		return st.v4.Action()
	}
	return st.v2.Action()
}

const headerRequestID = "X-Request-Id"

// handle runs the pipeline: parse, credential, verify, identity, forward.
func (s *Server) handle(ctx *fasthttp.RequestCtx) { s.handleOver(ctx, handover{}) }

// handover is what the event loop knows of a request it hands to a
// goroutine: admitted skips the guards after verification, which the loop
// asked already (markerNonce: what they answered); with a refusal, the
// request was at a backend already (see EventLoop.handOverRefusal).
type handover struct {
	admitted    bool
	markerNonce string
	// verified, hitsCounted: what the loop's pass counted (see state).
	verified, hitsCounted bool
	requestID             []byte    // kept from the loop's pass, if any
	now                   time.Time // the time the loop judged the request at, if it did
	refusal               *fasthttp.Response
	refused               *keystoneclient.Identity
}

// handleOver runs the pipeline for a request the event loop handed over.
func (s *Server) handleOver(ctx *fasthttp.RequestCtx, h handover) {
	start := time.Now()
	st := s.pool.Get().(*state)
	defer s.pool.Put(st)
	st.reset()
	st.admitted, st.markerNonce = h.admitted, h.markerNonce
	st.verifiedBefore, st.hitsCounted = h.verified, h.hitsCounted
	st.refusal, st.refused, st.now = h.refusal, h.refused, h.now
	if len(h.requestID) > 0 {
		st.requestID = append(st.requestID[:0], h.requestID...)
	} else {
		st.requestID = appendRequestID(st.requestID)
	}
	defer func() {
		// A bug must cost one request a 500, not the whole proxy (fasthttp
		// does not recover handler panics).
		if p := recover(); p != nil {
			s.fail(ctx, st, errInternalError, "", fmt.Errorf("panic: %v", p))
			s.m.requestDone(outcomeFailed, time.Since(start))
		}
	}()

	outcome := s.serve(ctx, st)
	s.m.requestDone(outcome, time.Since(start))
	if outcome == outcomeForwarded && s.cfg.Log.Access {
		s.logAccess(ctx, st, start)
	}
}

// logAccess logs a forwarded request (log.access). Its fields are copied
// (zap.String, not ByteString): they alias buffers the connection's next
// request reuses (the parsed values point into the received bytes), and a
// core that keeps fields to encode later, such as zaptest's observer,
// would read them changed.
func (s *Server) logAccess(ctx *fasthttp.RequestCtx, st *state, start time.Time) {
	s.log.Info("request",
		zap.String("request_id", string(st.requestID)),
		zap.String("client", s.clientAddr(ctx).String()),
		zap.String("access_key", logged(st.accessKey())),
		zap.String("action", logged(st.action())),
		zap.Int("status", ctx.Response.StatusCode()),
		zap.Duration("duration", time.Since(start)))
}

func (s *Server) serve(ctx *fasthttp.RequestCtx, st *state) outcome {
	uri := ctx.Request.Header.RequestURI()
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i+1:]
	}
	rt := s.route(path)
	if rt == nil && len(path) > 0 && path[0] != '/' && bytes.Contains(path, []byte("://")) {
		// Absolute form ("GET http://host/ HTTP/1.1") is what clients send
		// to a forward proxy: they meant to reach this endpoint directly.
		return s.fail(ctx, st, errInvalidRequest, "The request target must be a path, as sent to an endpoint directly, not "+shownTarget(path)+": is an HTTP proxy set for this endpoint (http_proxy, no_proxy)?", nil)
	}
	if rt == nil {
		return s.fail(ctx, st, errNoRoute, "No EC2 endpoint is served at "+string(path)+".", nil)
	}
	if st.inLoop && rt.client.IsTLS {
		return outcomeHandoff // the loop's backend connections are plain TCP: fasthttp's client speaks TLS
	}
	method := ctx.Method()
	isPost := bytes.Equal(method, methodPost)
	if !isPost && !bytes.Equal(method, methodGet) {
		return s.fail(ctx, st, errMethodNotAllowed, "", nil)
	}
	if badTE, badName := checkHeaders(ctx.Request.Header.RawHeaders()); badTE || badName != nil {
		// fasthttp accepts and drops e.g. "identity", and accepts names
		// with blanks inside; a balancer in front, or the backend, may read
		// the request differently: refuse and close (smuggling).
		msg := "Transfer-Encoding must be chunked, or absent."
		if badName != nil {
			msg = "The header name " + shownTarget(badName) + " is not a valid token (letters, digits and !#$%&'*+-.^_`|~ only)."
		}
		out := s.fail(ctx, st, errInvalidRequest, msg, nil)
		ctx.SetConnectionClose() // after fail, which resets the response
		return out
	}
	host := s.signedHost(ctx)
	if !s.hostAllowed(host) {
		return s.fail(ctx, st, errHostNotServed, "This endpoint does not serve the host "+string(host)+".", nil)
	}
	isForm := false
	st.retype = false
	switch ct := ctx.Request.Header.ContentType(); {
	case !isPost:
		if len(ctx.Request.Body()) > 0 { // never read as parameters, never signed: not forwarded either
			return s.fail(ctx, st, errInvalidRequest, "A GET request carries its parameters in the query string; this one has a body.", nil)
		}
	case isFormContentType(ct), len(bytes.TrimSpace(ct)) == 0:
		// webob (nova, ec2-api) reads a POST body as parameters when it is a
		// form, untyped, or multipart: each must be parsed, and signed, here
		// or refused, else a captured SigV2 request (its body unsigned) could
		// carry parameters of the sender's choosing to the backend.
		isForm, st.retype = true, !webobReadsForm(ct)
	case len(ctx.Request.Body()) > 0:
		return s.fail(ctx, st, errInvalidRequest, "A POST body must be application/x-www-form-urlencoded (the Query API's parameters), not "+sanitizedType(ct)+".", nil)
	}

	verifyStart := time.Now()
	var cred *credential
	var failed outcome
	if sigv4.IsSigV4(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), query) {
		cred, failed = s.verifyV4(ctx, st, method, host, path, query, isForm)
	} else {
		cred, failed = s.verifyV2(ctx, st, method, host, path, query, isForm)
	}
	if cred == nil {
		return failed
	}
	if !st.verifiedBefore {
		s.m.verified(st.version, time.Since(verifyStart))
	}
	st.verified = true
	if out, refused := s.afterVerify(ctx, st); refused {
		if out == outcomeAdmit {
			st.route, st.cred = rt, cred
		}
		return out
	}
	return s.afterAdmission(ctx, st, rt, cred)
}

// afterAdmission is the pipeline after the guards: identity, policy,
// forward (in the event loop: the request is left for it to send).
func (s *Server) afterAdmission(ctx *fasthttp.RequestCtx, st *state, rt *route, cred *credential) outcome {
	id := cred.standalone
	if s.identity != nil && st.inLoop {
		cached, ok := s.identity.(cachedIdentities)
		if !ok {
			return outcomeHandoff
		}
		if id, ok = cached.CachedIdentity(cred.access); !ok {
			return outcomeHandoff
		}
		st.identity = id // counted as a hit unless the request is handed over
	} else if s.identity != nil {
		if st.refused != nil {
			if !s.tokenReplaced(ctx, st, st.refused) { // marks st retried
				return s.relayRefusal(ctx, st)
			}
		}
		var err error
		id, err = s.identity.Identity(ctx, cred.access, &cred.key)
		switch {
		case errors.Is(err, keystoneclient.ErrRejected):
			return s.fail(ctx, st, errAuthFailure, "Keystone did not accept this credential: it may have been deleted, or its user or project disabled, or the user has no role on the project.", err)
		case err != nil:
			s.releaseMarker(ctx, st)
			return s.fail(ctx, st, errServiceUnavailable, "The identity service is unavailable. Please try again shortly.", err)
		}
	}
	if out, ok := s.authorize(ctx, st, id); !ok {
		return out
	}
	if st.inLoop {
		st.route, st.identity = rt, id
		return outcomeForwarded
	}
	return s.forward(ctx, st, rt, cred, id)
}

// cachedIdentities is an IdentitySource that can answer from its cache
// alone (*keystoneclient.Client).
type cachedIdentities interface {
	CachedIdentity(accessKey string) (*keystoneclient.Identity, bool)
	CountCachedHit()
}

var (
	methodGet  = []byte(fasthttp.MethodGet)
	methodPost = []byte(fasthttp.MethodPost)
)

func (s *Server) verifyV2(ctx *fasthttp.RequestCtx, st *state, method, host, path, query []byte, isForm bool) (*credential, outcome) {
	st.version = 2
	var body []byte
	if isForm {
		body = ctx.Request.Body()
	}
	if err := st.v2.Parse(method, host, path, query, body); err != nil {
		return nil, s.failSigV2(ctx, st, err)
	}
	if out, locked := s.lockedOut(ctx, st, st.v2.AccessKeyID()); locked {
		return nil, out
	}
	cred, failed := s.credential(ctx, st, st.v2.AccessKeyID())
	if cred == nil {
		return nil, failed
	}
	err := st.v2.Verify(&cred.key, s.requestTime(st), s.limits)
	if v2Mismatch(err) {
		for _, other := range s.otherHosts(ctx, st, host, false) {
			st.v2.SetHost(other)
			if e := st.v2.Verify(&cred.key, s.requestTime(st), s.limits); !v2Mismatch(e) {
				err = e
				break
			}
		}
		if v2Mismatch(err) {
			st.v2.SetHost(host) // the refusal shows the string to sign for the first
		}
	}
	if err != nil {
		if v2Mismatch(err) && !s.signatureFailed(ctx, st, st.v2.AccessKeyID(), st.v2.Signature()) {
			return nil, outcomeHandoff // counting it needs Redis
		}
		return nil, s.failSigV2(ctx, st, err)
	}
	return cred, 0
}

func (s *Server) verifyV4(ctx *fasthttp.RequestCtx, st *state, method, host, path, query []byte, isForm bool) (*credential, outcome) {
	st.version = 4
	st.headers = hostOverride{h: &ctx.Request.Header}
	if !bytes.Equal(host, ctx.Request.Header.Host()) {
		st.headers.host = host
	}
	if err := st.v4.Parse(method, path, query, ctx.Request.Body(), isForm, &st.headers); err != nil {
		return nil, s.failSigV4(ctx, st, err)
	}
	if len(st.v4.Action()) == 0 {
		return nil, s.fail(ctx, st, errMissingParameter, "The request must contain the parameter Action.", nil)
	}
	if out, locked := s.lockedOut(ctx, st, st.v4.AccessKeyID()); locked {
		return nil, out
	}
	cred, failed := s.credential(ctx, st, st.v4.AccessKeyID())
	if cred == nil {
		return nil, failed
	}
	err := st.v4.Verify(&cred.v4, s.requestTime(st), s.limitsV4)
	if v4Mismatch(err) {
		if others := s.otherHosts(ctx, st, host, true); len(others) > 0 {
			first := st.headers.host
			for _, other := range others {
				st.headers.host = other
				if e := st.v4.Verify(&cred.v4, s.requestTime(st), s.limitsV4); !v4Mismatch(e) {
					err = e
					break
				}
			}
			if v4Mismatch(err) { // the refusal shows the canonical request for the first
				st.headers.host = first
				_ = st.v4.Verify(&cred.v4, s.requestTime(st), s.limitsV4)
			}
		}
	}
	if err != nil {
		if v4Mismatch(err) && !s.signatureFailed(ctx, st, st.v4.AccessKeyID(), st.v4.Signature()) {
			return nil, outcomeHandoff // counting it needs Redis
		}
		return nil, s.failSigV4(ctx, st, err)
	}
	if st.v4.NormalizedPathVerified() {
		// Signed for the path normalised: /a/../b/ is signed as /b/, and
		// must not reach the backend that /a/ routes to.
		if signedFor := st.v4.NormalizedPath(); s.route(signedFor) != s.route(path) {
			return nil, s.fail(ctx, st, errInvalidRequest, "The request was signed for the path "+shownTarget(signedFor)+
				", which this endpoint routes elsewhere than "+shownTarget(path)+": send it to the path it was signed for.", nil)
		}
	}
	return cred, 0
}

func v2Mismatch(err error) bool {
	e, ok := err.(*sigv2.Error)
	return ok && e.Code == sigv2.CodeSignatureMismatch
}

func v4Mismatch(err error) bool {
	e, ok := err.(*sigv4.Error)
	return ok && e.Code == sigv4.CodeSignatureMismatch
}

// credential looks the access key up; a nil credential means the request
// has been answered with an error.
func (s *Server) credential(ctx *fasthttp.RequestCtx, st *state, accessKey []byte) (*credential, outcome) {
	var cred *credential
	var err error
	switch {
	case len(accessKey) > credstore.MaxAccessKeyLen:
		// No record has one: unknown, without a lookup or a negative cache
		// entry (a review: 1 MiB keys from a form cost a Redis lookup each,
		// and the cache held them long after negative_ttl).
		if st.inLoop {
			return nil, outcomeHandoff // the unknown-key lockout may need Redis
		}
		err = credstore.ErrNotFound
	case st.inLoop:
		var ok bool
		if cred, ok = s.creds.Peek(accessKey); !ok {
			return nil, outcomeHandoff // Redis has the answer
		}
		st.peeked = true
	case st.hitsCounted:
		// The loop counted this lookup's hit: Peek counts nothing.
		var ok bool
		if cred, ok = s.creds.Peek(accessKey); !ok {
			cred, err = s.creds.Get(ctx, accessKey)
		}
	default:
		cred, err = s.creds.Get(ctx, accessKey)
	}
	switch {
	case err == nil && !cred.enabled:
		return nil, s.fail(ctx, st, errAuthFailure, "", nil)
	case errors.Is(err, credstore.ErrNotFound):
		if s.unknownKey(ctx, st, accessKey) {
			return nil, s.fail(ctx, st, errClientLockedOut, "", nil)
		}
		return nil, s.fail(ctx, st, errAuthFailure, "", nil)
	case errors.Is(err, credstore.ErrCorrupt):
		return nil, s.fail(ctx, st, errAuthFailure, "", err)
	case err != nil:
		return nil, s.fail(ctx, st, errServiceUnavailable, "The credential store is unavailable. Please try again shortly.", err)
	}
	return cred, 0
}

// failSigV4 maps a sigv4 refusal to the error table.
func (s *Server) failSigV4(ctx *fasthttp.RequestCtx, st *state, err error) outcome {
	var e *sigv4.Error
	if !errors.As(err, &e) {
		return s.fail(ctx, st, errInternalError, "", err)
	}
	code := errInvalidParameterValue
	switch e.Code {
	case sigv4.CodeIncompleteSignature:
		code = errIncompleteSignature
	case sigv4.CodeMissingParameter:
		code = errMissingParameter
	case sigv4.CodeMalformedEncoding, sigv4.CodeDuplicateParameter:
		code = errMalformedQueryString
	case sigv4.CodeScopeNotAllowed:
		code = errAuthFailure
	case sigv4.CodeExpired, sigv4.CodeNotYetValid:
		code = errRequestExpired
	case sigv4.CodeSignatureMismatch:
		// As AWS does, show what the server computed so the user can diff.
		msg := append(st.scratch[:0], errorTable[errSignatureDoesNotMatch].message...)
		msg = append(msg, " The canonical request we calculated was:\n"...)
		msg = append(msg, st.v4.CanonicalRequest()...)
		msg = append(msg, "\nThe string to sign was:\n"...)
		msg = append(msg, st.v4.StringToSign()...)
		return s.fail(ctx, st, errSignatureDoesNotMatch, string(msg), nil)
	}
	return s.fail(ctx, st, code, sentence(e.Message()), nil)
}

// logged is client-sent text (an access key, an action) for a log line:
// cut at maxLogged bytes. A refused request's Action could be as large as
// the body, and each such line would be that size (found by a review).
func logged(b []byte) string {
	if len(b) > maxLogged {
		return string(b[:maxLogged]) + "…"
	}
	return string(b)
}

// maxLogged: no EC2 action is this long, nor any stored access key.
const maxLogged = credstore.MaxAccessKeyLen

// shownTarget is client-sent text (a request target, a header name) for a
// message: quoted, cut short.
func shownTarget(t []byte) string {
	if len(t) > 64 {
		t = t[:64]
	}
	return strconv.Quote(string(t))
}

// sanitizedType is a client's Content-Type for a message: its media type
// alone, cut short.
func sanitizedType(ct []byte) string {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return shownTarget(bytes.TrimSpace(ct))
}

// formContentType is what a form body is forwarded as when webob would
// not read the client's Content-Type as a form (webobReadsForm): the
// parameters verified here are then the ones the backend reads. Without
// it, a captured SigV2 request re-sent with its Content-Type re-spelled
// ("Application/...", "application/... ;", none: fasthttp's client then
// sends application/octet-stream, eventlet text/plain) and some signed
// parameters moved to the query verified, while the backend ignored the
// body, and with it a DryRun=true (found by a review).
const formContentType = "application/x-www-form-urlencoded; charset=utf-8"

// webobReadsForm reports whether webob reads a body of type ct as a UTF-8
// form: its media type (everything before ';', neither trimmed nor
// folded) is exactly the form's, and no other charset is named. webob
// refuses other charsets; the form was parsed here as UTF-8.
func webobReadsForm(ct []byte) bool {
	const form = "application/x-www-form-urlencoded"
	switch {
	case string(ct) == form:
		return true
	case len(ct) <= len(form) || string(ct[:len(form)]) != form || ct[len(form)] != ';':
		return false
	}
	switch string(ct[len(form)+1:]) {
	case " charset=utf-8", " charset=UTF-8", "charset=utf-8", "charset=UTF-8":
		return true
	}
	return false
}

func isFormContentType(ct []byte) bool {
	const form = "application/x-www-form-urlencoded"
	return len(ct) >= len(form) && bytes.EqualFold(ct[:len(form)], []byte(form)) &&
		(len(ct) == len(form) || ct[len(form)] == ';' || ct[len(form)] == ' ')
}

// failSigV2 maps a sigv2 refusal to the error table.
func (s *Server) failSigV2(ctx *fasthttp.RequestCtx, st *state, err error) outcome {
	var e *sigv2.Error
	if !errors.As(err, &e) {
		return s.fail(ctx, st, errInternalError, "", err)
	}
	code := errInvalidParameterValue
	switch e.Code {
	case sigv2.CodeMissingParameter:
		code = errMissingParameter
	case sigv2.CodeMalformedEncoding, sigv2.CodeDuplicateParameter:
		code = errMalformedQueryString
	case sigv2.CodeParameterCombination:
		code = errInvalidParameterCombination
	case sigv2.CodeUnsupportedSignatureVersion, sigv2.CodeUnsupportedSignatureMethod:
		code = errUnsupportedSignature
	case sigv2.CodeExpired, sigv2.CodeNotYetValid:
		code = errRequestExpired
	case sigv2.CodeMalformedSignature:
		code = errIncompleteSignature
	case sigv2.CodeSignatureMismatch:
		return s.failSignatureMismatch(ctx, st)
	}
	return s.fail(ctx, st, code, sentence(e.Message()), nil)
}

// failSignatureMismatch shows the string to sign the server computed, as AWS
// does, so the user can compare it with the client's. It holds no secret.
func (s *Server) failSignatureMismatch(ctx *fasthttp.RequestCtx, st *state) outcome {
	msg := append(st.scratch[:0], errorTable[errSignatureDoesNotMatch].message...)
	msg = append(msg, " The string to sign we calculated was: '"...)
	msg = st.v2.AppendStringToSign(msg, 0)
	msg = append(msg, '\'')
	if alt := st.v2.AppendStringToSign(nil, 1); len(alt) > 0 {
		msg = append(msg, " (the Host without its port was tried too)"...)
	}
	msg = append(msg, '.')
	return s.fail(ctx, st, errSignatureDoesNotMatch, string(msg), nil)
}

// sentence makes a package's error message a sentence: capitalised, with
// a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	if s[len(s)-1] != '.' {
		s += "."
	}
	return s
}

// fail writes the EC2 error for code, logs once and counts once. cause is the
// internal error behind a 5xx (or a suspicious 4xx), for the log only.
func (s *Server) fail(ctx *fasthttp.RequestCtx, st *state, code errorCode, message string, cause error) outcome {
	e := errorTable[code]
	if message == "" {
		message = e.message
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("text/xml; charset=UTF-8")
	ctx.Response.Header.SetBytesV(headerRequestID, st.requestID)
	st.scratch = appendErrorXML(st.scratch[:0], e, message, st.requestID)
	ctx.SetBody(st.scratch)
	out := outcomeRejected
	if e.status >= 500 {
		out = outcomeFailed
	}
	s.m.reject(code)
	level, msg := zap.InfoLevel, "request rejected"
	if out == outcomeFailed {
		level, msg = zap.WarnLevel, "request failed"
	}
	// Check first: the logger is sampled, and a flood's lines that it
	// drops should cost no fields either. Fields copied: see logAccess.
	if ce := s.log.Check(level, msg); ce != nil {
		fields := []zap.Field{
			zap.String("request_id", string(st.requestID)),
			zap.String("code", e.code),
			zap.Int("status", e.status),
			zap.String("client", s.clientAddr(ctx).String()),
			zap.String("access_key", logged(st.accessKey())),
			zap.String("action", logged(st.action())),
		}
		if cause != nil {
			fields = append(fields, zap.Error(cause))
		}
		ce.Write(fields...)
	}
	return out
}

// contextOf gives the request's context to a stage; fasthttp's RequestCtx is
// one, ending when the server shuts down.
var _ context.Context = (*fasthttp.RequestCtx)(nil)
