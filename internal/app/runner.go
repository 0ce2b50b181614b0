package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/proxy"
)

// Runner serves successive Apps behind one frontend, so a reload (SIGHUP)
// swaps configuration and dependencies without refusing, closing or
// dropping anything: connections stay open, new requests go to the new
// pipeline, and the old one is closed once its requests are done. Settings
// of the frontend itself (listen addresses, server.* limits and timeouts)
// apply at start only.
type Runner struct {
	ln, adminLn net.Listener
	frontend    *fasthttp.Server
	admin       *http.Server
	current     atomic.Pointer[App]
	draining    sync.WaitGroup // previous Apps still finishing their requests
	failed      chan error
	loops       []*proxy.EventLoop // none: the goroutine server accepts
	closing     atomic.Bool        // Quiesce was called
}

// NewRunner serves first on ln (and its admin endpoints on adminLn, if not
// nil).
func NewRunner(first *App, ln, adminLn net.Listener) *Runner {
	r := &Runner{ln: ln, adminLn: adminLn, failed: make(chan error, 2)}
	r.current.Store(first)
	r.frontend = first.Proxy.NewFrontend(
		func(ctx *fasthttp.RequestCtx) {
			r.current.Load().Proxy.ServeRequest(ctx)
			if r.closing.Load() {
				ctx.SetConnectionClose()
			}
		},
		func(ctx *fasthttp.RequestCtx, err error) { r.current.Load().Proxy.ServeTransportError(ctx, err) })
	if why := goroutinesOnly(&first.Config.Server); first.Config.Server.EventLoop && why != "" {
		first.Logger.Info("server.event_loop is on, but " + why + ": the goroutine server serves the EC2 listener")
	} else if first.Config.Server.EventLoop {
		// One loop per processor the process was given (GOMAXPROCS: the
		// cores, or the container's CPU limit).
		n := runtime.GOMAXPROCS(0)
		loops, err := proxy.NewEventLoops(n, ln, func() *proxy.Server { return r.current.Load().Proxy }, r.frontend.ServeConn, first.Logger, first.Config.Server.RawSocketIO, first.Config.Server.IOUring)
		if err != nil {
			first.Logger.Warn("event loop unavailable for this listener; serving with goroutines", zap.Error(err))
		}
		r.loops = loops
	}
	if len(r.loops) > 0 {
		reserveProcessorsForLoops(first.Logger, len(r.loops))
		// The loops hand some connections to the goroutine server
		// (ServeConn); it must serve a listener of its own for its
		// shutdown to wait for them (see handoffOnly).
		go func() {
			if err := r.frontend.Serve(newHandoffOnly(ln.Addr())); err != nil {
				r.fail(err)
			}
		}()
		for _, loop := range r.loops {
			go func() {
				runtime.LockOSThread()
				if err := loop.Run(); err != nil {
					r.fail(err)
				}
			}()
		}
	} else {
		// Out of file descriptors, fasthttp's Serve would return, and
		// the process stop: RetryAccept waits instead. It wraps the
		// outermost listener, the one fasthttp sees: the TLS, PROXY
		// protocol and rawsock wrappers pass the TCP listener's errors
		// through unchanged.
		go func() {
			if err := r.frontend.Serve(proxy.RetryAccept(ln, first.Logger)); err != nil {
				r.fail(err)
			}
		}()
	}
	if adminLn != nil {
		r.admin = &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				if r.closing.Load() && req.URL.Path == "/readyz" {
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprintln(w, "stopping: server.shutdown_delay, then the drain; take this replica out of the pool")
					return
				}
				r.current.Load().Admin.ServeHTTP(w, req)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go func() {
			if err := r.admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				r.fail(err)
			}
		}()
	}
	return r
}

// goroutinesOnly says why the event loop cannot serve the EC2 listener,
// or "": it reads plain TCP, and TLS and PROXY headers are the goroutine
// server's (crypto/tls and the proxyproto listener).
func goroutinesOnly(s *configs.Server) string {
	switch {
	case runtime.GOOS != "linux":
		return "it is Linux's (epoll)"
	case s.TLS.CertFile != "":
		return "server.tls is set (the loop serves plain TCP)"
	case s.ProxyProtocol:
		return "server.proxy_protocol is set (the loop does not read PROXY headers)"
	}
	return ""
}

// Current is the App serving new requests.
func (r *Runner) Current() *App { return r.current.Load() }

// fail reports a listener's end. It never blocks: the loops, the
// handoff server and the admin server may all end at once, more of them
// than the channel holds, and whoever reads it stops the process at the
// first; the others are logged.
func (r *Runner) fail(err error) {
	select {
	case r.failed <- err:
	default:
		r.current.Load().Logger.Error("a listener failed", zap.Error(err))
	}
}

// Failed delivers an error if a listener stops for good.
func (r *Runner) Failed() <-chan error { return r.failed }

// Swap makes next the pipeline for new requests at once. The old one is
// closed in the background once its requests are done (up to its
// shutdown_timeout); drained reports how that went. Swap returns at once so
// that a SIGTERM arriving while a slow request holds the old pipeline still
// stops the listener without delay. Swap and Stop are called from one
// goroutine.
func (r *Runner) Swap(next *App) (drained <-chan error) {
	old := r.current.Swap(next)
	done := make(chan error, 1)
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		ctx, cancel := context.WithTimeout(context.Background(), old.Config.Server.ShutdownTimeout)
		defer cancel()
		err := old.Proxy.Wait(ctx)
		old.Close()
		if err != nil {
			err = fmt.Errorf("draining the previous configuration: %w", err)
		}
		done <- err
	}()
	return done
}

// Quiesce starts a stop's first phase (server.shutdown_delay): /readyz
// answers 503, so balancers take this replica out, and every answer says
// Connection: close, so clients and balancers close their connections
// after it instead of meeting a close on an idle one. Requests are still
// accepted and served.
func (r *Runner) Quiesce() {
	r.closing.Store(true)
	for _, loop := range r.loops {
		loop.Quiesce()
	}
}

// Stop stops accepting, lets in-flight requests finish (up to
// shutdown_timeout), waits for earlier configurations to drain and closes
// everything.
func (r *Runner) Stop() error {
	r.closing.Store(true) // /readyz: 503 while draining, not 200 with the listener closed
	cur := r.current.Load()
	ctx, cancel := context.WithTimeout(context.Background(), cur.Config.Server.ShutdownTimeout)
	defer cancel()
	var err error
	if len(r.loops) > 0 {
		r.ln.Close() // each loop closes its copy of the socket as it stops
		errs := make(chan error, len(r.loops))
		for _, loop := range r.loops { // all stop accepting at once, then drain
			go func() { errs <- loop.Shutdown(ctx) }()
		}
		for range r.loops {
			if lerr := <-errs; err == nil {
				err = lerr
			}
		}
	}
	if ferr := r.shutdownFrontend(ctx); err == nil {
		err = ferr
	}
	if r.admin != nil {
		_ = r.admin.Shutdown(ctx)
	}
	r.draining.Wait() // bounded by each one's own shutdown_timeout
	cur.Close()
	if err != nil {
		cur.Logger.Warn("in-flight requests did not finish in time", zap.Error(err))
		return fmt.Errorf("draining: %w", err)
	}
	return nil
}

// shutdownFrontend shuts the goroutine server down once it serves every
// connection the loops handed it: one handed over as the loops drained may
// not be open there yet (its unsent answers are written first), and a
// shutdown that found nothing open returned while that connection's
// answers were still being written (a review). fasthttp's shutdown may be
// called again: each call closes idle connections and waits for the rest.
func (r *Runner) shutdownFrontend(ctx context.Context) error {
	for {
		if err := r.frontend.ShutdownWithContext(ctx); err != nil {
			return err
		}
		pending := int64(0)
		for _, loop := range r.loops {
			pending += loop.HandedOff()
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// reserveProcessorsForLoops adds a processor for each event loop's thread,
// unless GOMAXPROCS was set: a loop holds one nearly all the time (its
// reads and writes are raw system calls), and without their own,
// goroutines (cold requests, Redis, /metrics) would wait for a loop to
// block or be preempted, up to 10 ms, and the loop for them. The kernel
// still shares the cores; processors only decide who may run Go code.
// Once per process: reloads keep the loops.
func reserveProcessorsForLoops(log *zap.Logger, loops int) {
	reserveOnce.Do(func() {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		n := runtime.GOMAXPROCS(0) + loops
		runtime.GOMAXPROCS(n)
		log.Info("event loops started, each with a processor of its own", zap.Int("loops", loops), zap.Int("gomaxprocs", n))
	})
}

var reserveOnce sync.Once

// handoffOnly is the goroutine server's listener while the event loops
// accept: it yields no connection (the loops hand theirs to ServeConn),
// but with a listener fasthttp's ShutdownWithContext closes idle handed-off
// connections and waits for busy ones. Without one it returned at once, and
// SIGTERM cut the requests the loops had handed over (found by a review).
type handoffOnly struct {
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func newHandoffOnly(addr net.Addr) *handoffOnly {
	return &handoffOnly{addr: addr, closed: make(chan struct{})}
}

// Accept waits for Close; fasthttp's Serve then returns nil.
func (l *handoffOnly) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *handoffOnly) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffOnly) Addr() net.Addr { return l.addr }
