//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ec2proxy/ec2proxy/internal/rawsock"
)

var lf2 = []byte("\n\n") // bare line feeds: the goroutine server's to judge (at once)

// request serves c's buffered requests in turn: a refusal is answered at
// once and the next request read; a forwarded one waits for its answer.
// While more than maxUnsent of answers wait for the client to take them,
// c is stalled: nothing more is read or served until the socket drains.
func (l *EventLoop) request(c *loopConn) {
	if c.serving {
		return // a write of its own drained c (afterWrite): the call below goes on
	}
	c.serving = true
	for l.serveBuffered(c) { // stalled: a write that drains c goes on at once
		if !l.flush(c) || c.stalled {
			break // EPOLLOUT (afterWrite) resumes it
		}
	}
	c.serving = false
	if len(c.out) > 0 && l.conns[c.fd] == c {
		l.flush(c)
	}
	l.closeIfDone(c)
}

// maxUnsent is how much of its answers a client may leave untaken before
// the loop stops serving it: a client that pipelines requests and never
// reads must not grow the proxy's memory without end.
const maxUnsent = 64 << 10

// serveBuffered serves c's complete requests until one is in flight or
// none is left; it reports true if it stopped because c is stalled.
func (l *EventLoop) serveBuffered(c *loopConn) bool {
	for !c.busy && !c.closing && len(c.in) > 0 && l.conns[c.fd] == c {
		if len(c.out)-c.sent >= maxUnsent {
			c.stalled = true
			l.want(c, syscall.EPOLLOUT)
			return true
		}
		s := l.current()
		end := bytes.Index(c.in, crlf2)
		if end < 0 && len(c.in) <= s.cfg.Server.MaxHeaderBytes && !bytes.Contains(c.in, lf2) {
			return false // the head is on its way
		}
		if end < 0 || end+len(crlf2) > s.cfg.Server.MaxHeaderBytes {
			l.handoff(c) // the goroutine server answers 431, as it would have
			return false
		}
		// fasthttp's own parser: the loop frames requests exactly as the
		// goroutine server would, and leaves it whatever it would treat
		// specially.
		req := &c.ctx.Request
		req.Reset()
		l.rd.Reset(c.in)
		l.br.Reset(&l.rd)
		if err := req.Header.Read(l.br); err != nil {
			l.handoff(c)
			return false
		}
		size := req.Header.ContentLength()
		if size == -2 { // no Content-Length: no body, as fasthttp's server reads a request
			size = 0
		}
		if size < 0 || size > s.cfg.Server.MaxBodyBytes || req.Header.ConnectionClose() || !req.Header.IsHTTP11() ||
			len(req.Header.Peek(fasthttp.HeaderExpect)) > 0 {
			l.handoff(c)
			return false
		}
		head := len(c.in) - l.rd.Len() - l.br.Buffered()
		if head+size > len(c.in) {
			return false // the body is on its way
		}
		req.SetBodyRaw(c.in[head : head+size])
		if !l.proceed(c, s, l.run(s, c), head+size) {
			return false
		}
	}
	return false
}

// proceed acts on what the pipeline made of c's request, the first size
// bytes of c.in: hand it to a goroutine, ask the guards, answer a refusal
// or send it to a loop backend. It reports false if it closed c.
func (l *EventLoop) proceed(c *loopConn, s *Server, out outcome, size int) bool {
	switch out {
	case outcomeHandoff:
		l.dispatch(c, s, size)
		return true
	case outcomeAdmit:
		l.admit(c, s, size)
		return true
	case outcomeForwarded:
	default: // refused, and answered with an EC2 error
		s.m.loopServed.Inc()
		l.countHits(s, &c.st)
		c.held = size
		l.settle(c, out)
		return l.render(c, &c.ctx.Response)
	}
	b, err := l.pool.get(s.cfg.Backend.MaxConns, c.st.route.addr(), l)
	if err != nil {
		l.dispatch(c, s, size) // the goroutine pipeline dials, waits and answers
		return true
	}
	s.m.loopServed.Inc()
	l.countHits(s, &c.st)
	b.out = s.appendBackendRequest(b.out, &c.ctx, &c.st)
	// The parsed request (access key, action: logs) points into c.in
	// until the answer: keep those bytes until finish.
	c.held = size
	c.busy, c.away, c.backend, b.client = true, false, b, c
	c.active = l.now
	s.inflight.Add(1)
	l.flush(b)
	return true
}

// countHits counts the cache hits of a request the loop served: its
// lookups were Peeks, which count nothing (a request handed over is
// looked up, and counted, again).
func (l *EventLoop) countHits(s *Server, st *state) {
	if st.peeked {
		s.creds.CountHit()
	}
	if ci, ok := s.identity.(cachedIdentities); ok && st.identity != nil {
		ci.CountCachedHit()
	}
}

// run is the pipeline in loop mode: cache-only lookups; a refusal that
// needs no Redis is written to c.ctx.Response, anything that would wait
// returns outcomeHandoff. A panic sends the request to a goroutine, where
// the pipeline recovers and answers 500 as it always does.
func (l *EventLoop) run(s *Server, c *loopConn) (out outcome) {
	defer func() {
		if recover() != nil {
			out = outcomeHandoff
		}
	}()
	c.srv = s
	st := &c.st
	st.reset()
	st.inLoop = true
	if s.realClock {
		st.now = l.now
	}
	st.requestID = appendRequestID(st.requestID)
	c.start = l.now
	c.ctx.Response.Reset()
	return s.serve(&c.ctx, st)
}

// answer finishes the request once the backend's answer is complete; eof:
// the backend closed after what b.in holds (which ends a close-delimited
// body).
func (l *EventLoop) answer(b *loopConn, eof bool) {
	c := b.client
	if c == nil { // an idle connection spoke: not HTTP we understand
		l.closeOne(b)
		return
	}
	switch head, scan := scanAnswer(b.in); scan {
	case answerIncomplete:
		l.awaitRest(c, b)
		return
	case answerPlain:
		l.relay(c, b, head)
		return
	}
	if !eof {
		var pending bool
		if b.walked, pending = answerPending(b.in, b.walked); pending || closeDelimited(b.in) {
			l.awaitRest(c, b) // a close-delimited body ends when the backend closes
			return
		}
	}
	resp := &c.ctx.Response
	used, incomplete, err := parseAnswer(resp, b.in, &l.rd, l.br)
	if err != nil {
		// Only the end of what was read so far waits for more: a malformed
		// answer (or one over the limit) is a 502 now, not at the timeout.
		if !incomplete || eof || len(b.in) >= maxBackendAnswer {
			l.finish(c, fmt.Errorf("backend answer: %w", err))
			l.closeOne(b)
		}
		return
	}
	b.walked = answerWalk{}
	b.in = shrunk(b.in[:copy(b.in, b.in[used:])], readSize)
	reuse := !eof && !resp.ConnectionClose() && len(b.in) == 0
	l.finish(c, nil)
	if reuse {
		l.pool.put(b, l.now)
	} else {
		l.closeOne(b)
	}
}

// awaitRest leaves b reading the rest of c's answer, unless what it holds
// is at the limit already.
func (l *EventLoop) awaitRest(c, b *loopConn) {
	if len(b.in) >= maxBackendAnswer {
		l.finish(c, fmt.Errorf("backend answer: larger than %d bytes", maxBackendAnswer))
		l.closeOne(b)
	}
}

// finish answers c's request in flight at a loop backend: with the
// backend's answer in c.ctx.Response, or err's EC2 error.
func (l *EventLoop) finish(c *loopConn, err error) {
	if !c.busy || c.away {
		return
	}
	s := c.srv
	if b := c.backend; b != nil {
		c.backend, b.client = nil, nil
		if err != nil {
			l.closeOne(b)
		}
	}
	if err != nil {
		c.ctx.Response.Reset()
	} else if status := c.ctx.Response.StatusCode(); l.handOverRefusal(c, s, status, nil) {
		s.m.backendDone(status, nil, l.now.Sub(c.active))
		return
	}
	c.st.inLoop = false // an error is answered here
	out := s.forwarded(&c.ctx, &c.st, c.st.route, err, l.now.Sub(c.active))
	l.settle(c, out)
	l.respond(c, &c.ctx.Response)
}

// relay answers c's request with the plain answer at the start of b.in
// (see scanAnswer), as bytes, and keeps b for the next request.
func (l *EventLoop) relay(c, b *loopConn, head answerHead) {
	s := c.srv
	c.backend, b.client = nil, nil
	s.m.backendDone(head.status, nil, l.now.Sub(c.active))
	if l.handOverRefusal(c, s, head.status, b.in[:head.end]) {
		b.in = shrunk(b.in[:copy(b.in, b.in[head.end:])], readSize)
		l.keepOrClose(b)
		return
	}
	s.backendAnswered(&c.st, head.status)
	c.ctx.Response.SetStatusCode(head.status) // for the access log
	closing := l.closing.Load()
	c.out = appendRelayed(c.out, b.in[:head.end], c.st.requestID, closing)
	b.in = shrunk(b.in[:copy(b.in, b.in[head.end:])], readSize)
	l.keepOrClose(b)
	l.settle(c, outcomeForwarded)
	c.active = l.now
	if closing {
		l.closeAfterAnswers(c)
		return
	}
	if l.flush(c) && len(c.in) > 0 {
		l.request(c)
	}
}

// keepOrClose pools b after an answer, unless it said more than it was
// asked.
func (l *EventLoop) keepOrClose(b *loopConn) {
	if len(b.in) == 0 {
		l.pool.put(b, l.now)
	} else {
		l.closeOne(b)
	}
}

// settle counts and logs c's request, which has its answer, and drops the
// bytes it held.
func (l *EventLoop) settle(c *loopConn, out outcome) {
	s := c.srv
	s.m.requestDone(out, l.now.Sub(c.start))
	if out == outcomeForwarded && s.cfg.Log.Access {
		s.logAccess(&c.ctx, &c.st, c.start)
	}
	if c.busy { // at a backend (a refusal never was)
		c.busy = false
		s.inflight.Add(-1)
	}
	c.in = c.in[:copy(c.in, c.in[c.held:])]
	c.held = 0
}

// respond writes an answer, then serves the requests that arrived meanwhile.
func (l *EventLoop) respond(c *loopConn, resp *fasthttp.Response) {
	if l.render(c, resp) && l.flush(c) && len(c.in) > 0 {
		l.request(c)
	}
}

// render queues an answer on c; it reports false if the answer says
// Connection: close, and c is closing (see closeAfterAnswers).
func (l *EventLoop) render(c *loopConn, resp *fasthttp.Response) bool {
	l.w.b = &c.out
	l.bw.Reset(l.w)
	if len(resp.Header.Server()) == 0 { // as the goroutine server's fasthttp.Server does
		resp.Header.SetServer(serverName)
	}
	if l.closing.Load() {
		resp.SetConnectionClose()
	}
	_ = resp.Write(l.bw)
	_ = l.bw.Flush()
	c.active = l.now
	if resp.ConnectionClose() {
		l.closeAfterAnswers(c)
		return false
	}
	return true
}

// closeAfterAnswers closes c once the answers queued on it are written (or
// at server.write_timeout, if the client stops taking them): the last one
// said Connection: close. Nothing c sent after that request is served, as
// the goroutine server would not read it either. Closing at once lost the
// part of a large answer the socket had not taken, and serving on could
// send a pipelined request to the backend that no one would answer
// (found by a review).
func (l *EventLoop) closeAfterAnswers(c *loopConn) {
	c.closing = true
	c.in, c.held = c.in[:0], 0
	l.want(c, c.events) // reads nothing more
	if l.flush(c) {
		l.closeIfDone(c)
	}
}

// asked is the guards' answer for a request the loop holds (admit); the
// pipeline that asked is c.srv.
type asked struct {
	c *loopConn
	a admission
}

// admit asks the guards after verification about c's request, the first
// size bytes of c.in, on a goroutine: they call Redis, which the loop must
// not wait on. The request stays parsed in c (its bytes held) and resume
// goes on with it in the loop: the goroutine only carries the guard call,
// not the forward, which the loop's backend connections do cheaper.
func (l *EventLoop) admit(c *loopConn, s *Server, size int) {
	st := &c.st
	key := append([]byte(nil), st.accessKey()...) // c.in is the loop's
	fp, ttl, now := s.guards.replayMarker(st), s.markerTTL(st), s.requestTime(st)
	c.held = size
	c.busy, c.away = true, true
	s.inflight.Add(1)
	l.pending++
	go func() {
		a := s.guards.admit(context.Background(), key, fp, ttl, now)
		l.mu.Lock()
		l.asked = append(l.asked, asked{c: c, a: a})
		l.mu.Unlock()
		l.wake()
	}()
}

// resume carries on with c's request once the guards answered: refused,
// or on to identity, policy and the backend as if it had not paused. A
// handover from here tells the goroutine pipeline not to ask again (a
// replay marker is set once: asked twice, the request would be its own
// replay).
func (l *EventLoop) resume(c *loopConn, s *Server, a admission) {
	c.busy, c.away = false, false
	c.st.admitted, c.st.markerNonce = true, a.nonce
	goOn := l.proceed(c, s, l.afterGuards(s, c, a), c.held)
	s.inflight.Add(-1) // after proceed, which counts a forward again
	if goOn && !c.busy && l.flush(c) && len(c.in) > 0 {
		l.request(c)
	}
}

// afterGuards is the pipeline after the guards' answer, in loop mode; a
// panic hands the request to a goroutine, as in run.
func (l *EventLoop) afterGuards(s *Server, c *loopConn, a admission) (out outcome) {
	defer func() {
		if recover() != nil {
			out = outcomeHandoff
		}
	}()
	if out, refused := s.applyAdmission(&c.ctx, &c.st, a); refused {
		return out
	}
	return s.afterAdmission(&c.ctx, &c.st, c.st.route, c.st.cred)
}

// dispatched is a request served by the normal pipeline on a goroutine.
type dispatched struct {
	c   *loopConn
	ctx *fasthttp.RequestCtx
}

// dispatch runs the request in c.in[:size] through the normal pipeline on
// a goroutine (it may call Redis or Keystone, or answer an error);
// collect writes its answer.
func (l *EventLoop) dispatch(c *loopConn, s *Server, size int) {
	s.m.loopGoroutine.Inc()
	// Judged at the time the loop read it (or verified it), not when the
	// goroutine gets to it: after the guards' round trip a request verified
	// inside its window was refused RequestExpired (found by a review).
	l.dispatchOver(c, s, size, handover{admitted: c.st.admitted, markerNonce: c.st.markerNonce, now: c.st.now, verified: c.st.verified}, false)
}

// dispatchOver is dispatch with what the goroutine is to know; counted:
// the request is counted in flight already (it was at a backend), and
// stays so without a gap.
func (l *EventLoop) dispatchOver(c *loopConn, s *Server, size int, h handover, counted bool) {
	var ctx *fasthttp.RequestCtx
	if n := len(l.spare); n > 0 {
		ctx, l.spare = l.spare[n-1], l.spare[:n-1]
	} else {
		ctx = new(fasthttp.RequestCtx)
	}
	ctx.Init2(&c.peer, nil, true)      // true: bodies go back to fasthttp's pools, not kept in a spare
	c.ctx.Request.CopyTo(&ctx.Request) // its body is in c.in, which moves on
	c.in = c.in[:copy(c.in, c.in[size:])]
	c.held = 0
	c.busy, c.away = true, true
	if !counted {
		s.inflight.Add(1) // now, not on the goroutine: a resumed request counts without a gap (Wait)
	}
	l.pending++
	go func() {
		s.handleOver(ctx, h)
		s.inflight.Add(-1)
		l.mu.Lock()
		l.done = append(l.done, dispatched{c: c, ctx: ctx})
		l.mu.Unlock()
		l.wake()
	}()
}

// handOverRefusal hands c's request, which a loop backend refused with
// a 401 that may be about a revoked token (see Server.mayRetry), to a
// goroutine: that waits for Keystone's word on the token and sends the
// request again with a new one, or relays the refusal. raw is the
// refusal as received, or nil if c.ctx.Response holds it. It reports
// whether it handed the request over.
func (l *EventLoop) handOverRefusal(c *loopConn, s *Server, status int, raw []byte) bool {
	st := &c.st
	if !st.mayResendAfter(status) {
		return false // the common case, before any copy
	}
	refusal := new(fasthttp.Response)
	if raw == nil {
		c.ctx.Response.CopyTo(refusal)
	} else if refusal.Read(bufio.NewReader(bytes.NewReader(raw))) != nil {
		return false
	}
	if !s.mayRetry(st, refusal) {
		return false
	}
	// Counted as served in the loop already (proceed), not again, and in
	// flight still: Wait must never read 0 while it is under way (found by
	// a review). Judged at the same time: an Expires at its edge must not
	// expire between the passes.
	l.dispatchOver(c, s, c.held, handover{admitted: st.admitted, markerNonce: st.markerNonce, now: st.now,
		verified: st.verified, hitsCounted: true, requestID: append([]byte(nil), st.requestID...), refusal: refusal, refused: st.identity}, true)
	return true
}

// collect writes the answers of the requests served on goroutines.
func (l *EventLoop) collect() {
	var counter [8]byte
	_, _ = rawsock.Read(l.efd, counter[:])
	l.mu.Lock()
	done, answered := l.done, l.asked
	l.done, l.asked = nil, nil
	l.mu.Unlock()
	l.pending -= len(done) + len(answered)
	for _, q := range answered {
		if c := q.c; c.fd < len(l.conns) && l.conns[c.fd] == c {
			l.resume(c, c.srv, q.a)
		} else {
			q.c.srv.inflight.Add(-1) // the client left meanwhile (closeOne keeps c.srv)
		}
	}
	for _, d := range done {
		if c := d.c; c.fd < len(l.conns) && l.conns[c.fd] == c { // else the client left meanwhile
			c.busy, c.away = false, false
			l.respond(c, &d.ctx.Response)
		}
		l.recycle(d.ctx)
	}
}

// recycle keeps a dispatched request's context for the next dispatch: a
// cold start sends every request to a goroutine, and a fresh context each
// is garbage the loop need not make.
func (l *EventLoop) recycle(ctx *fasthttp.RequestCtx) {
	if len(l.spare) >= maxSpare {
		return
	}
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.ResetUserValues()
	l.spare = append(l.spare, ctx)
}

// maxSpare bounds the contexts kept: more than are usually in flight.
const maxSpare = 256

// handoff gives the connection, with what it has sent so far, to the
// goroutine server, which keeps it.
func (l *EventLoop) handoff(c *loopConn) {
	l.current().m.loopHandoff.Inc()
	if len(c.out) > 0 && !l.flushNow(c) { // answers still queued go first
		return // the write failed: closed
	}
	// What the socket did not take (a client reading slower than the loop
	// wrote) goes before anything the goroutine server answers.
	var unsent []byte
	if len(c.out) > c.sent {
		unsent = append(unsent, c.out[c.sent:]...)
		c.out, c.sent = c.out[:0], 0
	}
	if res := c.readRes; res > 0 { // io_uring: this round read more from c, not handled yet (see round)
		if len(c.in) != c.readAt {
			copy(c.in[len(c.in):cap(c.in)], c.in[c.readAt:c.readAt+int(res)])
		}
		c.in = c.in[:len(c.in)+int(res)]
		c.readRes = readHandled
	}
	writeTimeout := l.current().cfg.Server.WriteTimeout
	l.conns[c.fd] = nil
	l.clients.Add(-1) // the goroutine server's concurrency counts it now
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	f := os.NewFile(uintptr(c.fd), "ec2-client")
	nc, err := net.FileConn(f) // a copy, in Go's poller: one more descriptor
	if err != nil {
		// Out of descriptors: the request is answered here (unless answers
		// before it are still unsent: the 503 would be taken for theirs),
		// after the warning (a client that has its answer finds it logged).
		l.shortage.failed(err, "a request the event loop hands to the goroutine server is answered 503 ServiceUnavailable and its connection closed")
		if len(unsent) == 0 {
			_, _ = rawsock.Write(c.fd, noDescriptorForHandoff)
		}
	}
	f.Close()
	if err != nil {
		return
	}
	if l.rawIO {
		nc = rawsock.Wrap(nc)
	}
	var conn net.Conn = nc
	if len(c.in) > 0 {
		conn = &replayConn{Conn: nc, pending: append([]byte(nil), c.in...)}
	}
	l.handedOff.Add(1)
	go func() {
		defer l.handedOff.Add(-1)
		if len(unsent) > 0 {
			_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := nc.Write(unsent); err != nil {
				nc.Close()
				return
			}
			_ = nc.SetWriteDeadline(time.Time{})
		}
		_ = l.serve(conn)
	}()
}

var noDescriptorForHandoff = closingError(errServiceUnavailable, "This replica is out of file descriptors; retry shortly.")

// replayConn returns what the loop read before the rest of the stream.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// appendBackendRequest renders the backend's request as forward builds it
// (same headers dropped and added), straight into bytes: the client's
// parsed headers, whose values fasthttp's parser has checked, then ours.
func (s *Server) appendBackendRequest(dst []byte, ctx *fasthttp.RequestCtx, st *state) []byte {
	h := &ctx.Request.Header
	dst = append(dst, h.Method()...)
	dst = append(dst, ' ')
	dst = append(dst, h.RequestURI()...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	// Ours first, Content-Length leading: a backend whose parser stops at a
	// header line it cannot read (Python's, at a name with a blank, which
	// checkHeaders refuses) must still get the framing and the identity,
	// never read the body as a request of its own.
	body := ctx.Request.Body()
	if len(body) > 0 || !bytes.Equal(h.Method(), methodGet) { // fasthttp's client leaves it out of a bodiless GET
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	dst, proto := s.forwardedFor(dst, ctx)
	dst = append(dst, "\r\nX-Forwarded-Proto: "...)
	dst = append(dst, proto...)
	dst = append(dst, "\r\nX-Identity-Status: Confirmed\r\n"...)
	id := st.identity
	named := append(dst, "X-Auth-Token: "...)
	if withToken := id.AppendToken(named); len(withToken) > len(named) {
		dst = append(withToken, "\r\n"...)
	}
	for _, kv := range identityHeaders(id) {
		if kv[1] != "" && !hasLineBreak(kv[1]) { // fasthttp's Add sanitises; bytes do not
			dst = append(dst, kv[0]...)
			dst = append(dst, ": "...)
			dst = append(dst, kv[1]...)
			dst = append(dst, "\r\n"...)
		}
	}
	dst = append(dst, "X-Request-Id: "...)
	dst = append(dst, st.requestID...)
	dst = append(dst, "\r\nX-OpenStack-Request-ID: "...)
	dst = append(dst, st.requestID...)
	dst = append(dst, "\r\n"...)
	if st.retype {
		dst = append(dst, "Content-Type: "+formContentType+"\r\n"...)
	}
	connection := h.Peek(fasthttp.HeaderConnection)
	for name, value := range h.All() {
		if notForwarded(name, value, connection) || len(name) == len(contentLengthName) && bytes.EqualFold(name, contentLengthName) ||
			st.retype && len(name) == len(contentTypeName) && bytes.EqualFold(name, contentTypeName) {
			continue
		}
		dst = appendHeaderLine(dst, name, value)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

var contentLengthName, contentTypeName = []byte("content-length"), []byte("content-type")

// hasLineBreak reports a CR or LF in s. Two IndexByte scans: for the
// identity's dozen values per request, strings.ContainsAny (an ASCII set
// built per call, then a byte loop) cost 3% of the loop's CPU.
func hasLineBreak(s string) bool {
	return strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0
}

func appendHeaderLine(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}
