// Package app wires ec2proxy together from a configuration: Redis or file
// store, Keystone client, metrics, the proxy and the admin listener. The
// command and the end-to-end tests both start ec2proxy through it.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/guard"
	"github.com/ec2proxy/ec2proxy/internal/flightcache"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
	"github.com/ec2proxy/ec2proxy/metrics"
	"github.com/ec2proxy/ec2proxy/proxy"
)

// App is a wired ec2proxy, not yet listening.
type App struct {
	Config   *configs.Config
	Logger   *zap.Logger
	Registry *prometheus.Registry
	Proxy    *proxy.Server
	Admin    http.Handler
	Keystone *keystoneclient.Client // nil in standalone mode
	closers  []func() error
}

// Build wires everything cfg describes. It reads the files cfg names
// (credentials, passwords, CA) but contacts no service: a dependency that is
// down at start-up shows in /readyz and in 503 answers, not as a crash.
func Build(cfg *configs.Config, logger *zap.Logger, version string) (*App, error) {
	a := &App{Config: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(a.Registry, version)

	var checks []proxy.ReadyCheck
	var store credstore.Backend
	var shared *guard.Redis // lockout counters and replay markers, with a redis store
	switch cfg.Credentials.Store {
	case configs.StoreFile:
		f, err := credstore.LoadFile(cfg.Credentials.File)
		if err != nil {
			return nil, err
		}
		logger.Info("credential file loaded", zap.String("file", cfg.Credentials.File), zap.Int("credentials", f.Len()))
		store = f
	case configs.StoreRedis:
		redis.SetLogger(redisLogger{logger}) // go-redis logs to stderr by default, once per failed dial
		client, err := NewRedisClient(cfg.Redis)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, client.Close)
		keyring, err := LoadKeyring(cfg.Credentials)
		if err != nil {
			return nil, err
		}
		r := credstore.NewRedis(client, cfg.Redis.KeyPrefix, keyring)
		shared = guard.NewRedis(client, cfg.Redis.KeyPrefix)
		checks = append(checks, proxy.ReadyCheck{Name: "redis", Check: r.Ping})
		store = r
	}

	var identity proxy.IdentitySource
	if cfg.Identity.Mode == configs.ModeKeystone {
		kc, err := NewKeystoneClient(cfg.Keystone, m)
		if err != nil {
			return nil, err
		}
		a.Keystone = kc
		identity = kc
		checks = append(checks, proxy.ReadyCheck{Name: "keystone", Check: kc.Ready})
		m.RegisterCacheSize("token", kc.CachedTokens)
	}

	p, err := proxy.New(proxy.Options{Config: cfg, Credentials: store, Identity: identity, Metrics: m, Logger: logger,
		Guards: newGuards(cfg.Protection, shared)})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Proxy = p
	m.RegisterCacheSize("credential", p.CachedCredentials)
	a.Admin = proxy.NewAdminHandler(a.Registry, checks)
	return a, nil
}

// newGuards builds the protections the configuration turns on, sharing
// their state through Redis when there is one.
func newGuards(p configs.Protection, shared *guard.Redis) proxy.Guards {
	var g proxy.Guards
	if p.Lockout.Enabled {
		var s guard.Shared
		if shared != nil {
			s = shared
		}
		g.Lockout = guard.NewLockout(guard.LockoutConfig{MaxFailures: p.Lockout.MaxFailures, Window: p.Lockout.Window, Duration: p.Lockout.Duration}, s)
	}
	if p.RateLimit.RequestsPerSecond > 0 {
		g.RateLimit = guard.NewRateLimit(p.RateLimit.RequestsPerSecond, p.RateLimit.Burst, 1_000_000)
	}
	if p.Replay.Enabled {
		if shared != nil {
			g.Replay = shared
		} else {
			g.Replay = guard.NewSeen(1_000_000)
		}
	}
	return g
}

// LoadKeyring reads the encryption keys; nil when secrets are plain.
func LoadKeyring(c configs.Credentials) (*credstore.Keyring, error) {
	if c.EncryptionKeyFile == "" {
		return nil, nil
	}
	return credstore.LoadKeyring(c.EncryptionKeyFile, c.OldEncryptionKeyFiles...)
}

// NewRedisClient connects to a single node, a Sentinel set or a Cluster,
// depending on the configuration.
func NewRedisClient(c configs.Redis) (redis.UniversalClient, error) {
	password := c.Password
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	opts := &redis.UniversalOptions{
		Addrs:        c.Addrs,
		MasterName:   c.MasterName,
		Username:     c.Username,
		Password:     password,
		DB:           c.DB,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		PoolSize:     c.PoolSize,
		// Requests wait on Redis only on a cache miss, and a Redis that is
		// down must turn into a quick 503: retry once, dial once more.
		MaxRetries:         1,
		DialerRetries:      1,
		DialerRetryTimeout: 50 * time.Millisecond,
	}
	if c.TLS.Enabled {
		t, err := configs.ClientTLS(c.TLS.TLSClient)
		if err != nil {
			return nil, fmt.Errorf("redis.tls: %w", err)
		}
		opts.TLSConfig = t
	}
	return redis.NewUniversalClient(opts), nil
}

// NewKeystoneClient builds the Keystone client and wires its metrics.
func NewKeystoneClient(k configs.Keystone, m *metrics.Metrics) (*keystoneclient.Client, error) {
	password := k.ServiceUser.Password
	if k.ServiceUser.PasswordFile != "" {
		b, err := os.ReadFile(k.ServiceUser.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("keystone.service_user.password_file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	}
	var t *tls.Config
	if strings.HasPrefix(k.AuthURL, "https://") {
		var err error
		if t, err = configs.ClientTLS(k.TLS); err != nil {
			return nil, fmt.Errorf("keystone.tls: %w", err)
		}
	}
	tokenCache := map[flightcache.Outcome]prometheus.Counter{}
	for o := range flightcache.NumOutcomes {
		tokenCache[o] = m.CacheLookups.WithLabelValues("token", o.String())
	}
	return keystoneclient.New(keystoneclient.Config{
		AuthURL:           k.AuthURL,
		Username:          k.ServiceUser.Name,
		Password:          password,
		UserDomainName:    k.ServiceUser.DomainName,
		ProjectName:       k.ServiceUser.ProjectName,
		ProjectDomainName: k.ServiceUser.ProjectDomainName,
		Timeout:           k.Timeout,
		TLS:               t,
		TokenMargin:       k.TokenMargin,
		MaxTokens:         k.MaxTokens,
		Observe: func(op, result string, d time.Duration) {
			m.KeystoneCalls.WithLabelValues(op, result).Inc()
			m.KeystoneLatency.WithLabelValues(op).Observe(d.Seconds())
		},
		CacheObserve: func(o flightcache.Outcome) { tokenCache[o].Inc() },
	})
}

// Run serves the EC2 listener (and the admin listener, if adminLn is not
// nil) until ctx ends, then stops accepting, drains in-flight requests for
// up to server.shutdown_timeout and returns.
func (a *App) Run(ctx context.Context, ln, adminLn net.Listener) error {
	r := NewRunner(a, ln, adminLn)
	var err error
	select {
	case <-ctx.Done():
	case err = <-r.Failed():
		err = fmt.Errorf("listener stopped: %w", err)
	}
	if serr := r.Stop(); serr != nil && err == nil {
		err = serr
	}
	return err
}

// Close releases connections to dependencies.
func (a *App) Close() {
	for _, c := range a.closers {
		_ = c()
	}
}

// redisLogger sends go-redis's internal messages (dial failures) to zap,
// whose sampling keeps an outage from flooding the log.
type redisLogger struct{ l *zap.Logger }

func (r redisLogger) Printf(_ context.Context, format string, args ...any) {
	r.l.Warn("redis: " + fmt.Sprintf(format, args...))
}
