package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

func configFlag(fs interface {
	StringVar(*string, string, string, string)
}) *string {
	path := new(string)
	fs.StringVar(path, "config", os.Getenv(configs.EnvConfigFile), "configuration file; $"+configs.EnvConfigFile+" if not given")
	return path
}

func serve(args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", "[-config FILE]", stderr)
	path := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("no configuration: pass -config FILE or set %s (see configs/examples/)", configs.EnvConfigFile)
	}
	load := func() (*configs.Config, error) { return configs.Load(*path, os.Environ()) }
	cfg, err := load()
	if err != nil {
		return err
	}
	return serveConfig(cfg, load, nil)
}

// serveConfig runs ec2proxy until SIGINT or SIGTERM, then drains. SIGHUP
// reloads: load gives the new configuration, a new proxy is built from it
// (re-reading credentials, key and password files) and takes over the
// sockets while the old one drains; a bad configuration is logged and the
// running one kept. started, if set, is called once the sockets are bound.
func serveConfig(cfg *configs.Config, load func() (*configs.Config, error), started func()) error {
	logger, err := app.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // nothing to do if stderr is gone
	// Caught from the start: a SIGTERM arriving once the listener accepts
	// but before the loop below runs killed the process (the default
	// action), cutting what it had accepted; now it waits for the loop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	app.TuneRuntime(cfg.Server, logger)
	a, err := app.Build(cfg, logger, buildVersion())
	if err != nil {
		return err
	}
	tlsConfig, err := app.TLSListenerConfig(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, logger)
	if err != nil {
		a.Close()
		return err
	}
	var runner atomic.Pointer[app.Runner] // bad PROXY headers are reported to the current App
	ln, err := app.ListenEC2(cfg, tlsConfig, func(peer net.Addr, err error) {
		if r := runner.Load(); r != nil {
			r.ProxyProtocolError(peer, err)
		}
	})
	if err != nil {
		a.Close()
		return err
	}
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ln.Close()
			a.Close()
			return fmt.Errorf("admin_listen %s: %w", cfg.AdminListen, err)
		}
	}
	r := app.NewRunner(a, ln, adminLn)
	runner.Store(r)
	logger.Info("ec2proxy started",
		zap.String("version", buildVersion()),
		zap.String("listen", ln.Addr().String()),
		zap.Bool("tls", tlsConfig != nil),
		zap.Bool("proxy_protocol", cfg.Server.ProxyProtocol),
		zap.Int("memory_limit_mib", cfg.Server.MemoryLimitMiB),
		zap.Int("gc_percent", cfg.Server.GCPercent),
		zap.String("admin_listen", cfg.AdminListen),
		zap.String("identity", cfg.Identity.Mode),
		zap.String("credentials", cfg.Credentials.Store))
	for _, w := range app.FileWarnings(cfg) {
		logger.Warn("configuration file warning: " + w)
	}
	if started != nil {
		started()
	}
	// Ready once signals are handled too: a reload right after would
	// otherwise kill it (SIGHUP's default).
	ready := "READY=1\nSTATUS=serving on " + ln.Addr().String()
	notify := func(state string) {
		if err := app.Notify(state); err != nil {
			logger.Warn("could not tell systemd the service's state", zap.Error(err))
		}
	}
	notify(ready)
	for {
		select {
		case err := <-r.Failed():
			logger.Error("a listener failed; stopping", zap.Error(err))
			_ = r.Stop()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notify(app.ReloadingState())
				next, ok := reload(cfg, r.Current(), load, logger)
				if !ok {
					notify(ready) // the running configuration serves on
				} else {
					drained, log := r.Swap(next), next.Logger
					go func() {
						if err := <-drained; err != nil {
							log.Warn("the previous configuration did not drain cleanly", zap.Error(err))
						}
					}()
					cfg, logger = next.Config, next.Logger
					logger.Info("configuration reloaded")
					notify(ready)
				}
				continue
			}
			notify("STOPPING=1")
			return stop(r, cfg.Server.ShutdownDelay, sig, sigs, logger)
		}
	}
}

// stop ends serving after sig: server.shutdown_delay first (see
// Runner.Quiesce), then the drain.
func stop(r *app.Runner, delay time.Duration, sig os.Signal, sigs <-chan os.Signal, logger *zap.Logger) error {
	if delay > 0 {
		r.Quiesce()
		logger.Info("stopping: /readyz answers 503 and every answer closes its connection; serving on for server.shutdown_delay (another SIGTERM or SIGINT ends it)",
			zap.String("signal", sig.String()), zap.Duration("shutdown_delay", delay))
		if err := lingerUntil(time.After(delay), sigs, r.Failed(), logger); err != nil {
			logger.Error("a listener failed; stopping", zap.Error(err))
			_ = r.Stop()
			return err
		}
	}
	logger.Info("stopping: no new connections, draining in-flight requests", zap.String("signal", sig.String()))
	err := r.Stop()
	logger.Info("ec2proxy stopped")
	return err
}

// lingerUntil waits for the end of server.shutdown_delay, cut short by
// another SIGINT or SIGTERM (an impatient operator) or a failed listener,
// whose error it returns.
func lingerUntil(end <-chan time.Time, sigs <-chan os.Signal, failed <-chan error, logger *zap.Logger) error {
	for {
		select {
		case <-end:
			return nil
		case err := <-failed:
			return err
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				logger.Info("second signal: ending server.shutdown_delay now", zap.String("signal", sig.String()))
				return nil
			}
			logger.Warn("reload ignored: the process is stopping")
		}
	}
}

// reload builds the App for the new configuration, or logs why not.
func reload(cur *configs.Config, prev *app.App, load func() (*configs.Config, error), logger *zap.Logger) (next *app.App, ok bool) {
	defer func() {
		// A bug building the new pipeline (a library panicking on a value
		// validation missed) must cost the reload, not the running proxy.
		if p := recover(); p != nil {
			logger.Error("reload failed, keeping the running configuration", zap.Any("panic", p))
			next, ok = nil, false
		}
	}()
	cfg, err := load()
	if err != nil {
		logger.Error("reload refused, keeping the running configuration", zap.Error(err))
		return nil, false
	}
	if cfg.Listen != cur.Listen || cfg.AdminListen != cur.AdminListen {
		logger.Error("reload refused: listen and admin_listen cannot change without a restart")
		return nil, false
	}
	if !reflect.DeepEqual(cfg.Server, cur.Server) {
		logger.Warn("server.* settings (timeouts, size limits) changed: they apply after a restart; the rest is reloaded")
	}
	// Kept, all of them: the goroutine server keeps the values it started
	// with, and the event loops and the pipeline read theirs from the
	// current configuration, so a reload applied some (trusted_proxies,
	// shutdown_timeout; the loops' limits) and one request got different
	// answers on different paths (found by a review).
	cfg.Server = cur.Server
	nextLogger, err := app.NewLogger(cfg.Log)
	if err != nil {
		logger.Error("reload refused", zap.Error(err))
		return nil, false
	}
	next, err = app.Rebuild(cfg, nextLogger, buildVersion(), prev)
	if err != nil {
		logger.Error("reload refused, keeping the running configuration", zap.Error(err))
		return nil, false
	}
	// The new pipeline starts with empty caches. While Redis or Keystone
	// is down, the running one's cached credentials and tokens are what
	// serves (stale_if_error): a reload then turned a partial outage into
	// a whole one (found by a review).
	ctx, cancel := context.WithTimeout(context.Background(), reloadCheckTimeout)
	err = next.Unready(ctx)
	cancel()
	if err != nil {
		next.Close()
		logger.Error("reload refused, keeping the running configuration: a dependency does not answer, and a reload starts with empty caches "+
			"(the running configuration serves what it has cached meanwhile); reload once it answers", zap.Error(err))
		return nil, false
	}
	return next, true
}

// reloadCheckTimeout bounds the new configuration's dependency checks.
const reloadCheckTimeout = 10 * time.Second
