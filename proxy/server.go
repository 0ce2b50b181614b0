// Package proxy is ec2proxy's request pipeline: it parses and verifies EC2
// Query API requests, obtains the caller's identity, and forwards the
// request to the compute backend with keystonemiddleware-style identity
// headers. It is the only package that writes EC2 error responses.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/metrics"
	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// IdentitySource trades a verified access key for an identity
// (*keystoneclient.Client does, with a cached Keystone token).
type IdentitySource interface {
	Identity(ctx context.Context, accessKey string, key *sigv2.Key) (*keystoneclient.Identity, error)
}

// Options are a Server's dependencies.
type Options struct {
	Config      *configs.Config
	Credentials credstore.Backend
	// Identity is nil in standalone mode: the identity then comes from the
	// credential record and no token is forwarded.
	Identity IdentitySource
	Metrics  *metrics.Metrics
	Logger   *zap.Logger
	Guards   Guards
	// Policy, if set, authorizes each action after authentication.
	Policy PolicySource
	Now    func() time.Time // clock; time.Now if nil
}

// Server is the EC2 API front end.
type Server struct {
	cfg          *configs.Config
	limits       sigv2.Limits
	limitsV4     sigv4.Limits
	creds        *credstore.Cache[*credential]
	identity     IdentitySource
	guards       Guards
	authz        *authorizer // nil: no policy
	allowedHosts [][]byte
	routes       []route // longest prefix first
	trusted      []netip.Prefix
	m            *instruments
	log          *zap.Logger
	now          func() time.Time
	realClock    bool      // now is time.Now: the event loop may lend its reading
	pool         sync.Pool // *state
	http         *fasthttp.Server
	inflight     atomic.Int64 // requests in this pipeline, for Wait
}

// credential is what the cache keeps per access key: its secret, as a
// SigV2 key and a SigV4 secret that prepare their HMACs on first use and
// keep them, and only what requests need of the record (memory per cached
// key matters at 100,000 keys). It is one allocation (96 bytes), the keys
// sharing one copy of the secret (another), plus the HMAC states its
// client's requests prepare (one per signature version and method, or SigV4
// scope, used).
type credential struct {
	enabled bool
	// access is the access key, the credential cache's own copy of it: the
	// token cache keys by it too, rather than by a copy of its own.
	access string
	key    sigv2.Key
	v4     sigv4.Secret
	// standalone is the identity forwarded in standalone mode.
	standalone *keystoneclient.Identity
}

// New builds a server; it does not listen yet.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	realClock := opts.Now == nil
	if realClock {
		opts.Now = time.Now
	}
	s := &Server{
		cfg: cfg,
		limits: sigv2.Limits{
			TimestampWindow: cfg.Auth.TimestampWindow,
			MaxExpiresAhead: cfg.Auth.MaxExpiresAhead,
			DisableSHA1:     cfg.Auth.DisableSHA1,
		},
		limitsV4: sigv4.Limits{
			TimestampWindow: cfg.Auth.TimestampWindow,
			Regions:         cfg.Auth.SigV4Regions,
			Services:        cfg.Auth.SigV4Services,
		},
		identity:  opts.Identity,
		guards:    opts.Guards,
		m:         newInstruments(opts.Metrics),
		log:       opts.Logger,
		now:       opts.Now,
		realClock: realClock,
	}
	s.pool.New = func() any { return new(state) }
	if opts.Policy != nil {
		s.authz = &authorizer{source: opts.Policy, vec: opts.Metrics.Policy}
	}
	prepare := prepareCredential
	if opts.Identity == nil {
		prepare = prepareStandalone
	}
	s.creds = credstore.NewCache(instrumentBackend(opts.Credentials, s.m), prepare, credstore.CacheOptions{
		TTL:          cfg.Credentials.CacheTTL,
		NegativeTTL:  cfg.Credentials.NegativeTTL,
		StaleIfError: cfg.Credentials.StaleIfError,
		MaxEntries:   cfg.Credentials.MaxEntries,
		FetchTimeout: cfg.Redis.ReadTimeout + cfg.Redis.DialTimeout,
		Now:          opts.Now,
		Observe:      s.m.credentialCache,
	})
	for _, h := range cfg.Protection.AllowedHosts {
		s.allowedHosts = append(s.allowedHosts, []byte(h))
	}
	trusted, err := cfg.Server.TrustedPrefixes()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.trusted = trusted
	for _, r := range cfg.Routes {
		rt, err := newRoute(r, &cfg.Backend, cfg.Server.RawSocketIO, s.m.connectFailed)
		if err != nil {
			return nil, err
		}
		s.m.backendConnects.WithLabelValues(rt.addr()) // the series exists at 0 from the start
		s.routes = append(s.routes, rt)
	}
	sort.SliceStable(s.routes, func(i, j int) bool { return len(s.routes[i].prefix) > len(s.routes[j].prefix) })
	s.http = s.NewFrontend(s.handle, s.handleTransportError)
	return s, nil
}

// NewFrontend builds the fasthttp server with this configuration's limits
// and timeouts around handler. A Runner gives it a handler that forwards to
// whichever pipeline is current, so a reload swaps pipelines without closing
// a connection.
func (s *Server) NewFrontend(handler fasthttp.RequestHandler, errorHandler func(*fasthttp.RequestCtx, error)) *fasthttp.Server {
	cfg := s.cfg
	return &fasthttp.Server{
		Handler:               handler,
		ErrorHandler:          errorHandler,
		Name:                  serverName,
		ReadTimeout:           cfg.Server.ReadTimeout,
		WriteTimeout:          cfg.Server.WriteTimeout,
		IdleTimeout:           cfg.Server.IdleTimeout,
		MaxRequestBodySize:    cfg.Server.MaxBodyBytes,
		ReadBufferSize:        cfg.Server.MaxHeaderBytes,
		Concurrency:           cfg.Server.Concurrency,
		NoDefaultServerHeader: true,
		SecureErrorLogMessage: true, // its parse errors would quote the request: signatures, tokens
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                newZapPrintf(s.log),
	}
}

// ServeRequest serves one request with this pipeline, counted for Wait.
func (s *Server) ServeRequest(ctx *fasthttp.RequestCtx) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.handle(ctx)
}

// ServeTransportError answers a request the frontend could not read.
func (s *Server) ServeTransportError(ctx *fasthttp.RequestCtx, err error) {
	s.handleTransportError(ctx, err)
}

// Wait returns once this pipeline serves no request, or with ctx's error.
func (s *Server) Wait(ctx context.Context) error {
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func prepareCredential(r credstore.Record) *credential {
	secret := []byte(r.Secret) // never changed afterwards: both keys keep it
	c := &credential{enabled: r.Enabled, access: r.AccessKey}
	c.key.Init(secret)
	c.v4.Init(secret)
	return c
}

// prepareStandalone also keeps the identity forwarded in standalone mode.
func prepareStandalone(r credstore.Record) *credential {
	c := prepareCredential(r)
	c.standalone = &keystoneclient.Identity{Subject: &keystoneclient.Subject{
		UserID: r.UserID, UserName: r.UserName, UserDomainID: r.UserDomainID,
		ProjectID: r.ProjectID, ProjectName: r.ProjectName, ProjectDomainID: r.ProjectDomainID,
		Roles: r.Roles, RolesHeader: strings.Join(r.Roles, ","), TrustID: r.TrustID,
	}}
	return c
}

// Serve answers EC2 requests on ln until Shutdown; running out of file
// descriptors pauses accepting rather than ending it (see RetryAccept).
func (s *Server) Serve(ln net.Listener) error { return s.http.Serve(RetryAccept(ln, s.log)) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.ShutdownWithContext(ctx)
}

// zapPrintf adapts fasthttp's logger to zap, at most fasthttpLinesPerSecond
// lines a second: fasthttp logs a line per failed connection (a TLS
// handshake a scanner broke off, say), and a flood of those must not become
// a flood of log lines. The next line logged says how many were dropped.
type zapPrintf struct {
	l          *zap.Logger
	now        func() time.Time
	mu         sync.Mutex
	second     time.Time // when the current one-second window began
	lines      int       // logged in it
	suppressed int       // dropped since the last line logged
}

const fasthttpLinesPerSecond = 10

func newZapPrintf(l *zap.Logger) *zapPrintf { return &zapPrintf{l: l, now: time.Now} }

func (z *zapPrintf) Printf(format string, args ...any) {
	now := z.now()
	z.mu.Lock()
	if now.Sub(z.second) >= time.Second {
		z.second, z.lines = now, 0
	}
	if z.lines >= fasthttpLinesPerSecond {
		z.suppressed++
		z.mu.Unlock()
		return
	}
	z.lines++
	suppressed := z.suppressed
	z.suppressed = 0
	z.mu.Unlock()
	if suppressed > 0 {
		z.l.Warn("fasthttp: "+fmt.Sprintf(format, args...), zap.Int("fasthttp_lines_dropped_before", suppressed))
		return
	}
	z.l.Warn("fasthttp: " + fmt.Sprintf(format, args...))
}

// handleTransportError answers requests fasthttp could not read.
func (s *Server) handleTransportError(ctx *fasthttp.RequestCtx, err error) {
	if tc, ok := ctx.Conn().(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
		// No request: a client that refused the certificate, spoke plain
		// HTTP or a TLS version below 1.2, or a scanner. Counted and logged
		// as a rejected EC2 request, each inflated the request metrics
		// with an answer the connection could not carry (a review).
		ctx.SetConnectionClose()
		return
	}
	st := s.pool.Get().(*state)
	defer s.pool.Put(st)
	st.reset()
	st.requestID = appendRequestID(st.requestID)
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.fail(ctx, st, errRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", s.cfg.Server.MaxBodyBytes), nil)
	case errors.As(err, &small):
		s.fail(ctx, st, errHeadersTooLarge, fmt.Sprintf("The request headers are larger than %d bytes.", s.cfg.Server.MaxHeaderBytes), nil)
	case errors.As(err, &netErr) && netErr.Timeout():
		s.fail(ctx, st, errRequestTimeout, "", nil)
	default:
		s.fail(ctx, st, errInvalidRequest, "The request could not be parsed as HTTP/1.1.", err)
	}
	ctx.SetConnectionClose()
}

// CachedCredentials is the number of access keys in the credential cache.
func (s *Server) CachedCredentials() int { return s.creds.Len() }

// tokenForgetter is an IdentitySource with a per-key token cache.
type tokenForgetter interface{ Forget(accessKey string) }

// Invalidate drops what this pipeline caches about accessKey (credential,
// token), after another process announced a change to it.
func (s *Server) Invalidate(accessKey string) {
	s.creds.Invalidate(accessKey)
	if f, ok := s.identity.(tokenForgetter); ok {
		f.Forget(accessKey)
	}
}

// SetCredentialTTL changes how long credentials are cached, shortening
// what is cached already (short while change events cannot be heard).
func (s *Server) SetCredentialTTL(ttl time.Duration) { s.creds.SetTTL(ttl) }
