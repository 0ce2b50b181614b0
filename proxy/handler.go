package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/sigv2"
)

// state is the per-request scratch, pooled so that the warm path does not
// allocate.
type state struct {
	v2        sigv2.Request
	out       fasthttp.Request
	in        fasthttp.Response
	requestID []byte
	scratch   []byte
}

func (st *state) reset() {
	st.v2.Reset()
	st.requestID = st.requestID[:0]
	st.scratch = st.scratch[:0]
}

const headerRequestID = "X-Request-Id"

// handle runs the pipeline: parse, credential, verify, identity, forward.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	st := s.pool.Get().(*state)
	defer s.pool.Put(st)
	st.reset()
	st.requestID = appendRequestID(st.requestID)
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
		s.log.Info("request",
			zap.ByteString("request_id", st.requestID),
			zap.ByteString("access_key", st.v2.AccessKeyID()),
			zap.ByteString("action", st.v2.Action()),
			zap.Int("status", ctx.Response.StatusCode()),
			zap.Duration("duration", time.Since(start)))
	}
}

func (s *Server) serve(ctx *fasthttp.RequestCtx, st *state) outcome {
	uri := ctx.Request.Header.RequestURI()
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i+1:]
	}
	rt := s.route(path)
	if rt == nil {
		return s.fail(ctx, st, errNoRoute, "No EC2 endpoint is served at "+string(path)+".", nil)
	}
	method := ctx.Method()
	isPost := bytes.Equal(method, methodPost)
	if !isPost && !bytes.Equal(method, methodGet) {
		return s.fail(ctx, st, errMethodNotAllowed, "", nil)
	}
	var body []byte
	if isPost && isFormContentType(ctx.Request.Header.ContentType()) {
		body = ctx.Request.Body()
	}
	if isSigV4(ctx, query) {
		return s.fail(ctx, st, errUnsupportedSignature, "Signature Version 4 is not supported by this endpoint yet: sign with SignatureVersion 2 (HmacSHA256).", nil)
	}

	verifyStart := time.Now()
	if err := st.v2.Parse(method, ctx.Request.Header.Host(), path, query, body); err != nil {
		return s.failSigV2(ctx, st, err)
	}
	cred, err := s.creds.Get(ctx, st.v2.AccessKeyID())
	switch {
	case err == nil && !cred.record.Enabled:
		return s.fail(ctx, st, errAuthFailure, "", nil)
	case errors.Is(err, credstore.ErrNotFound):
		return s.fail(ctx, st, errAuthFailure, "", nil)
	case errors.Is(err, credstore.ErrCorrupt):
		return s.fail(ctx, st, errAuthFailure, "", err)
	case err != nil:
		return s.fail(ctx, st, errServiceUnavailable, "The credential store is unavailable. Please try again shortly.", err)
	}
	if err := st.v2.Verify(cred.key, s.now(), s.limits); err != nil {
		return s.failSigV2(ctx, st, err)
	}
	s.m.verified(2, time.Since(verifyStart))

	id := cred.standalone
	if s.identity != nil {
		id, err = s.identity.Identity(ctx, st.v2.AccessKeyID(), cred.key)
		switch {
		case errors.Is(err, keystoneclient.ErrRejected):
			return s.fail(ctx, st, errAuthFailure, "Keystone did not accept this credential: it may have been deleted, or its user or project disabled, or the user has no role on the project.", err)
		case err != nil:
			return s.fail(ctx, st, errServiceUnavailable, "The identity service is unavailable. Please try again shortly.", err)
		}
	}
	return s.forward(ctx, st, rt, id)
}

var (
	methodGet  = []byte(fasthttp.MethodGet)
	methodPost = []byte(fasthttp.MethodPost)
)

func isFormContentType(ct []byte) bool {
	const form = "application/x-www-form-urlencoded"
	return len(ct) >= len(form) && bytes.EqualFold(ct[:len(form)], []byte(form)) &&
		(len(ct) == len(form) || ct[len(form)] == ';' || ct[len(form)] == ' ')
}

// isSigV4 spots a Signature Version 4 request: an AWS4 Authorization header
// or a presigned query.
func isSigV4(ctx *fasthttp.RequestCtx, query []byte) bool {
	return bytes.HasPrefix(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), []byte("AWS4-")) ||
		bytes.Contains(query, []byte("X-Amz-Algorithm="))
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

// sentence upper-cases the first letter of a package's error message.
func sentence(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:] + "."
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
	fields := []zap.Field{
		zap.ByteString("request_id", st.requestID),
		zap.String("code", e.code),
		zap.Int("status", e.status),
		zap.String("client", ctx.RemoteIP().String()),
		zap.ByteString("access_key", st.v2.AccessKeyID()),
		zap.ByteString("action", st.v2.Action()),
	}
	if cause != nil {
		fields = append(fields, zap.Error(cause))
	}
	if out == outcomeFailed {
		s.log.Warn("request failed", fields...)
	} else {
		s.log.Info("request rejected", fields...)
	}
	return out
}

// contextOf gives the request's context to a stage; fasthttp's RequestCtx is
// one, ending when the server shuts down.
var _ context.Context = (*fasthttp.RequestCtx)(nil)
