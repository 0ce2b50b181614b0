package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/guard"
)

// Replayer records request signatures for replay protection (guard.Seen in
// this process, guard.Redis for the fleet). Mark reports whether the
// signature is new, and the nonce its marker holds, for Release.
type Replayer interface {
	Mark(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (nonce string, first bool, err error)
	markerReleaser
}

// markerReleaser frees the marker of a request refused, before the backend
// saw it, with an answer that asks for a retry (RequestLimitExceeded, the
// identity service unavailable): the request was not used, and the
// client's retry may carry the very same signature (boto 2 and botocore
// sign it again within the same second: SigV2's Timestamp and SigV4's
// X-Amz-Date count whole seconds). The signature then passes once more
// within guard.ReuseWindow of its first use. Other refusals keep their
// markers.
type markerReleaser interface {
	Release(ctx context.Context, accessKey []byte, signatureHash, nonce string) error
}

// RateLimiter takes a token for an access key (guard.RateLimit per replica,
// guard.SharedRateLimit for the fleet). An error is reported, but allowed
// is still the answer to apply.
type RateLimiter interface {
	Take(ctx context.Context, key []byte, now time.Time) (allowed bool, err error)
}

// Admitter does Replayer's and RateLimiter's work in one step
// (guard.SharedAdmission: one Redis command for both). An error must fail
// the request closed, as Replayer's does. Its verdict Limited frees the
// marker itself.
type Admitter interface {
	AdmitMarked(ctx context.Context, accessKey []byte, signatureHash string, ttl time.Duration) (guard.Admission, string, error)
	markerReleaser
}

// Guards are the optional abuse protections; nil fields are off. Admit,
// when set, replaces RateLimit and Replay (which are then nil).
type Guards struct {
	Lockout   *guard.Lockout
	RateLimit RateLimiter
	Replay    Replayer
	Admit     Admitter
}

// hostAllowed checks the Host header against protection.allowed_hosts,
// with and without its port, case-insensitively.
func (s *Server) hostAllowed(host []byte) bool {
	if len(s.allowedHosts) == 0 {
		return true
	}
	noPort := host
	if i := portStart(host); i >= 0 {
		noPort = host[:i]
	}
	for _, h := range s.allowedHosts {
		if bytes.EqualFold(host, h) || bytes.EqualFold(noPort, h) {
			return true
		}
	}
	return false
}

// lockedOut answers a locked access key; it reads local state only.
func (s *Server) lockedOut(ctx *fasthttp.RequestCtx, st *state, accessKey []byte) (outcome, bool) {
	if s.guards.Lockout == nil {
		return 0, false
	}
	until, locked := s.guards.Lockout.Locked(accessKey, s.requestTime(st))
	if !locked {
		return 0, false
	}
	return s.fail(ctx, st, errLockedOut, "This access key is locked until "+until.UTC().Format(time.RFC3339)+
		" after too many failed signatures; check the secret key the client uses, and that the endpoint URL it signs (host, port, path) is the one it sends to.", nil), true
}

// signatureFailed counts a failed signature towards the key's lockout. It
// reports false, having counted nothing, when the event loop would have to
// wait on Redis for it: the request then goes to a goroutine.
func (s *Server) signatureFailed(ctx *fasthttp.RequestCtx, st *state, accessKey, signature []byte) bool {
	if s.guards.Lockout == nil {
		return true
	}
	_, counted := s.countFailure(ctx, st, "access_key", string(accessKey), fingerprint(signature))
	return counted
}

// unknownKey counts an unknown access key against the client address and
// reports whether that address was already locked (the request that sets
// the lock is answered like the ones before it). Not in the event loop,
// which hands unknown keys over.
func (s *Server) unknownKey(ctx *fasthttp.RequestCtx, st *state, accessKey []byte) bool {
	if s.guards.Lockout == nil {
		return false
	}
	wasLocked, _ := s.countFailure(ctx, st, "client", clientKey(s.clientAddr(ctx)), fingerprint(accessKey))
	return wasLocked
}

// clientKey is the lockout key of a client address: an IPv6 address's /64,
// which one host or site holds whole (it could guess from a new address
// each time, and fill the lockout table doing so).
func clientKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "client:" + p.String()
	}
	return "client:" + a.String()
}

// countFailure records a failure and reports whether key was locked before
// it. In the event loop only a failure that needs no Redis is counted
// (counted false: nothing was).
func (s *Server) countFailure(ctx *fasthttp.RequestCtx, st *state, kind, key, fp string) (wasLocked, counted bool) {
	now := s.requestTime(st)
	_, wasLocked = s.guards.Lockout.Locked([]byte(key), now)
	var f guard.Failure
	if st.inLoop {
		if f, counted = s.guards.Lockout.RecordLocally(key, fp, now); !counted {
			return false, false
		}
	} else {
		var err error
		f, err = s.guards.Lockout.Record(ctx, key, fp, now)
		if err != nil {
			s.log.Warn("lockout counters unavailable; counting on this replica only", zap.Error(err))
		}
	}
	if f.LockedNow {
		s.m.lockout(kind)
		s.log.Warn("locked after too many failures", zap.String("kind", kind), zap.String("key", key),
			zap.Time("until", f.Until), zap.String("client", s.clientAddr(ctx).String()))
	}
	return wasLocked, true
}

// fingerprint identifies a request by its signature, so that identical
// retries of one failed request count once.
func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// afterVerify applies the rate limit and replay protection to a request
// whose signature verified, once per request (st.admitted). The event
// loop may not wait on Redis: there, guards that use it pause the request
// (outcomeAdmit) while the loop asks them on a goroutine (EventLoop.admit);
// it goes on with st.admitted set.
func (s *Server) afterVerify(ctx *fasthttp.RequestCtx, st *state) (outcome, bool) {
	g := &s.guards
	if st.admitted || !g.active() {
		return 0, false
	}
	if st.inLoop && !g.local() {
		return outcomeAdmit, true
	}
	a := g.admit(ctx, st.accessKey(), g.replayMarker(st), s.markerTTL(st), s.requestTime(st))
	out, refused := s.applyAdmission(ctx, st, a)
	// Asked once: a hand-over to a goroutine after this must not ask again
	// (the replay marker is set: the request would be its own replay).
	st.admitted, st.markerNonce = !refused, a.nonce
	return out, refused
}

// replayMarker is the request's fingerprint for replay protection, or ""
// when that is off (a rate limit alone needs none: spare its allocation).
func (g *Guards) replayMarker(st *state) string {
	if g.Replay == nil && g.Admit == nil {
		return ""
	}
	if st.version == 2 {
		// The decoded MAC: base64 text is not unique (the last character's
		// unused bits, CR/LF the decoder skips, '+' sent as a space), and
		// each re-encoding of a captured signature verifies.
		var mac [64]byte
		if b, ok := st.v2.AppendMAC(mac[:0]); ok {
			return fingerprint(b)
		}
	}
	return fingerprint(st.signature()) // SigV4's is decoded already
}

// markerTTL keeps a replay marker as long as the request could be
// accepted again.
func (s *Server) markerTTL(st *state) time.Duration {
	if st.version == 4 && st.v4.Presigned() {
		return st.v4.Expires() + s.cfg.Auth.TimestampWindow
	}
	return 2*s.cfg.Auth.TimestampWindow + s.cfg.Auth.MaxExpiresAhead
}

// admission is the guards' answer on a verified request.
type admission struct {
	verdict    guard.Admission
	nonce      string // of the replay marker the request set, for Release
	err        error  // the replay store failed: the request fails closed
	rateErr    error  // the fleet rate limit failed: this replica's bucket answered
	releaseErr error  // a limited request's replay marker stayed
}

// active reports whether any guard applies to a verified request.
func (g *Guards) active() bool {
	return g.Replay != nil || g.RateLimit != nil || g.Admit != nil
}

// local reports whether the guards after verification all answer from
// this process's memory (guard.Seen, guard.RateLimit): the event loop
// calls them itself.
func (g *Guards) local() bool {
	if g.Admit != nil {
		return false
	}
	if _, ok := g.Replay.(*guard.Seen); g.Replay != nil && !ok {
		return false
	}
	_, ok := g.RateLimit.(*guard.RateLimit)
	return g.RateLimit == nil || ok
}

// admit asks the guards about a verified request. It touches no request
// state: the event loop calls it on a goroutine.
func (g *Guards) admit(ctx context.Context, accessKey []byte, fp string, ttl time.Duration, now time.Time) admission {
	if g.Admit != nil {
		verdict, nonce, err := g.Admit.AdmitMarked(ctx, accessKey, fp, ttl)
		return admission{verdict: verdict, nonce: nonce, err: err}
	}
	var a admission
	if g.Replay != nil {
		nonce, first, err := g.Replay.Mark(ctx, accessKey, fp, ttl)
		switch {
		case err != nil:
			return admission{err: err}
		case !first:
			return admission{verdict: guard.Replayed}
		}
		a.nonce = nonce
	}
	// After the replay check: replays of a captured request must not spend
	// its owner's tokens.
	if g.RateLimit != nil {
		allowed, err := g.RateLimit.Take(ctx, accessKey, now)
		if !allowed {
			a.verdict = guard.Limited
			if g.Replay != nil {
				a.releaseErr = g.Replay.Release(ctx, accessKey, fp, a.nonce)
			}
		}
		a.rateErr = err
	}
	return a
}

// releaseMarker forgets the replay marker of an admitted request that
// fails before the backend sees it, with an answer that asks for a retry
// (see markerReleaser). Off the event loop only: it may wait on Redis.
func (s *Server) releaseMarker(ctx context.Context, st *state) {
	g := &s.guards
	var r markerReleaser
	switch {
	case !st.admitted: // no marker was set
		return
	case g.Admit != nil:
		r = g.Admit
	case g.Replay != nil:
		r = g.Replay
	default:
		return
	}
	if err := r.Release(ctx, st.accessKey(), g.replayMarker(st), st.markerNonce); err != nil {
		s.log.Warn("replay marker of a request not served left in place: a retry with the same signature is refused", zap.Error(err))
	}
}

// applyAdmission answers a request the guards did not admit.
func (s *Server) applyAdmission(ctx *fasthttp.RequestCtx, st *state, a admission) (outcome, bool) {
	if a.rateErr != nil {
		s.log.Warn("shared rate limit unavailable, using this replica's bucket", zap.Error(a.rateErr))
	}
	if a.releaseErr != nil {
		s.log.Warn("replay marker of a limited request left in place: a retry with the same signature is refused", zap.Error(a.releaseErr))
	}
	switch {
	case a.err != nil:
		return s.failReplayStore(ctx, st, a.err), true
	case a.verdict == guard.Replayed:
		return s.fail(ctx, st, errReplayed, "", nil), true
	case a.verdict == guard.Limited:
		return s.fail(ctx, st, errRequestLimitExceeded, "", nil), true
	}
	return 0, false
}

// failReplayStore fails closed: a replay must not pass because Redis is down.
func (s *Server) failReplayStore(ctx *fasthttp.RequestCtx, st *state, err error) outcome {
	return s.fail(ctx, st, errServiceUnavailable, "The replay-protection store is unavailable. Please try again shortly.", err)
}
