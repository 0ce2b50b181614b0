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
	"reflect"
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
	"github.com/ec2proxy/ec2proxy/policy"
	"github.com/ec2proxy/ec2proxy/proxy"
)

// App is a wired ec2proxy, not yet listening.
type App struct {
	Config   *configs.Config
	Logger   *zap.Logger
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	Proxy    *proxy.Server
	Admin    http.Handler
	Keystone *keystoneclient.Client // nil in standalone mode
	closers  []func() error
	// local: the guards when they keep their state in this process (no
	// Redis), which a reload with the same protection settings reuses.
	local *proxy.Guards
	// checks: the dependencies /readyz asks (Redis, Keystone).
	checks []proxy.ReadyCheck
}

// Unready is the first of a's dependencies (Redis, Keystone) that does not
// answer, as /readyz asks them, or nil.
func (a *App) Unready(ctx context.Context) error {
	for _, c := range a.checks {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

// Build wires everything cfg describes. It reads the files cfg names
// (credentials, passwords, CA) but contacts no service: a dependency that is
// down at start-up shows in /readyz and in 503 answers, not as a crash.
func Build(cfg *configs.Config, logger *zap.Logger, version string) (*App, error) {
	return Rebuild(cfg, logger, version, nil)
}

// Rebuild is Build for a reload from prev (nil: none). Guards that keep
// their state in this process (no Redis) are prev's when the protection
// settings are the same: a reload lifted every lock, forgot every replay
// marker and refilled every bucket (found by a review).
func Rebuild(cfg *configs.Config, logger *zap.Logger, version string, prev *App) (*App, error) {
	a := &App{Config: cfg, Logger: logger, Registry: prometheus.NewRegistry()}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(a.Registry, version)
	a.Metrics = m

	var checks []proxy.ReadyCheck
	var store credstore.Backend
	var redisStore *credstore.Redis
	var file *credstore.WatchedFile
	var shared *guard.Redis // lockout counters and replay markers, with a redis store
	switch cfg.Credentials.Store {
	case configs.StoreFile:
		f, err := credstore.LoadWatchedFile(cfg.Credentials.File)
		if err != nil {
			return nil, fmt.Errorf("credentials.file: %w", err)
		}
		logger.Info("credential file loaded", zap.String("file", cfg.Credentials.File), zap.Int("credentials", f.Len()))
		store, file = f, f
	case configs.StoreRedis:
		redis.SetLogger(redisLogger{logger}) // go-redis logs to stderr by default, once per failed dial
		client, err := NewRedisClient(cfg.Redis)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, client.Close)
		keyring, err := LoadKeyring(cfg.Credentials)
		if err != nil {
			a.Close() // a refused reload must not leave a Redis client behind
			return nil, err
		}
		redisStore = credstore.NewRedis(client, cfg.Redis.KeyPrefix, keyring)
		shared = guard.NewRedis(client, cfg.Redis.KeyPrefix)
		checks = append(checks, proxy.ReadyCheck{Name: "redis", Check: redisStore.Ping})
		store = redisStore
	}

	var identity proxy.IdentitySource
	if cfg.Identity.Mode == configs.ModeKeystone {
		var tokens keystoneclient.SharedTokens
		if redisStore != nil && cfg.Keystone.ShareTokens {
			tokens = redisStore
		}
		kc, err := NewKeystoneClient(cfg.Keystone, m, tokens)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.Keystone = kc
		identity = kc
		checks = append(checks, proxy.ReadyCheck{Name: "keystone", Check: kc.Ready})
		m.RegisterCacheSize("token", kc.CachedTokens)
	}

	guards := newGuards(cfg.Protection, shared)
	if shared == nil {
		if prev != nil && prev.local != nil && reflect.DeepEqual(prev.Config.Protection, cfg.Protection) {
			guards = *prev.local
		}
		a.local = &guards
	}
	rules, err := a.openPolicy(m)
	if err != nil {
		a.Close()
		return nil, err
	}
	p, err := proxy.New(proxy.Options{Config: cfg, Credentials: store, Identity: identity, Metrics: m, Logger: logger,
		Guards: guards, Policy: rules})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Proxy = p
	m.RegisterCacheSize("credential", p.CachedCredentials)
	if redisStore != nil {
		a.watchChanges(redisStore, m, guards.Lockout)
	}
	if file != nil {
		a.watchFile(file, m)
	}
	a.Admin = proxy.NewAdminHandler(a.Registry, checks)
	a.checks = checks
	return a, nil
}

// staticPolicy is the shipped default policy, which never changes.
type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Policy() *policy.Policy { return s.p }

// openPolicy loads the authorization policy (nil when off). A policy file
// is watched for changes; one that is broken at start-up stops the start,
// one broken later is logged and its last good rules kept.
func (a *App) openPolicy(m *metrics.Metrics) (proxy.PolicySource, error) {
	c := a.Config.Policy
	switch {
	case !c.Enabled:
		return nil, nil
	case c.File == "":
		p, err := policy.Parse(configs.DefaultPolicy)
		if err != nil {
			return nil, fmt.Errorf("the shipped default policy: %w", err)
		}
		return staticPolicy{p}, nil
	}
	f, err := policy.Open(c.File, policy.FileOptions{
		OnReload: func() {
			m.PolicyReloads.WithLabelValues("ok").Inc()
			a.Logger.Info("policy reloaded", zap.String("file", c.File))
		},
		OnError: func(err error) {
			m.PolicyReloads.WithLabelValues("error").Inc()
			a.Logger.Error("policy file not reloaded: keeping the last good rules", zap.String("file", c.File), zap.Error(err))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("policy.file: %w", err)
	}
	a.Logger.Info("policy loaded", zap.String("file", c.File), zap.Int("actions", len(f.Policy().Actions())))
	a.background(func(ctx context.Context) { f.Watch(ctx, c.CheckInterval) })
	return f, nil
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
	if rl := p.RateLimit; rl.RequestsPerSecond > 0 {
		if shared != nil && rl.Scope == configs.ScopeFleet {
			g.RateLimit = shared.NewRateLimit(rl.RequestsPerSecond, rl.Burst, 1_000_000)
		} else {
			g.RateLimit = guard.NewRateLimit(rl.RequestsPerSecond, rl.Burst, 1_000_000)
		}
	}
	if p.Replay.Enabled {
		if shared != nil {
			g.Replay = shared
		} else {
			g.Replay = guard.NewSeen(1_000_000)
		}
	}
	if rate, ok := g.RateLimit.(*guard.SharedRateLimit); ok && p.Replay.Enabled && shared != nil {
		// Both in Redis: one command per request for the two.
		g.Admit, g.Replay, g.RateLimit = shared.NewAdmission(rate), nil, nil
	}
	return g
}

// LoadKeyring reads the encryption keys; nil when secrets are plain.
func LoadKeyring(c configs.Credentials) (*credstore.Keyring, error) {
	if c.EncryptionKeyFile == "" {
		return nil, nil
	}
	for _, f := range keyFiles(c) { // each named by its setting when it fails
		if _, err := credstore.LoadKeyring(f.path); err != nil {
			return nil, fmt.Errorf("%s: %w", f.setting, err)
		}
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
		ClientName:   c.ClientName,
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
	if c.MasterName == "" && len(c.Addrs) > 1 {
		// A Cluster client learns a failover from MOVED replies, which a
		// dead master never sends: by default it would keep sending a shard's
		// commands to the dead node for up to a minute. Reload the slot map
		// every second instead (one CLUSTER SLOTS a second per replica).
		copts := opts.Cluster()
		copts.ClusterStateReloadInterval = time.Second
		return redis.NewClusterClient(copts), nil
	}
	return redis.NewUniversalClient(opts), nil
}

// watchChanges keeps the caches in step with changes other processes make
// in Redis. Until subscribed, and whenever the subscription is lost, the
// credential cache runs on the short unsubscribed TTL.
func (a *App) watchChanges(r *credstore.Redis, m *metrics.Metrics, lockout *guard.Lockout) {
	c := a.Config.Credentials
	c.UnsubscribedTTL = min(c.UnsubscribedTTL, c.CacheTTL) // never longer than when subscribed
	a.Proxy.SetCredentialTTL(c.UnsubscribedTTL)
	a.background(func(ctx context.Context) {
		r.Watch(ctx, credstore.WatchOptions{
			Changed: func(accessKey string) {
				a.Proxy.Invalidate(accessKey)
				m.Invalidations.Inc()
			},
			Other: func(payload string) {
				if key, until, ok := guard.ParseLockEvent(payload); ok && lockout != nil {
					lockout.Learn(key, until, time.Now())
				}
			},
			Subscribed: func(up bool) {
				if up {
					a.Proxy.SetCredentialTTL(c.CacheTTL)
					m.Subscribed.Set(1)
					a.Logger.Info("subscribed to credential changes", zap.String("channel", r.EventsChannel()))
					return
				}
				a.Proxy.SetCredentialTTL(c.UnsubscribedTTL)
				m.Subscribed.Set(0)
				a.Logger.Warn("not subscribed to credential changes: caching credentials for credentials.unsubscribed_ttl only",
					zap.Duration("unsubscribed_ttl", c.UnsubscribedTTL))
			},
		})
	})
}

// background runs run until the App is closed; Close waits for it to return.
// fileCheckInterval is how often the credentials file is checked for a
// change (a stat; the file is read only when it changed).
const fileCheckInterval = time.Second

// watchFile applies changes to the credentials file (creds disable,
// delete, rotate, or an edit) within two fileCheckIntervals: each changed
// access key leaves the caches at once.
func (a *App) watchFile(f *credstore.WatchedFile, m *metrics.Metrics) {
	path := a.Config.Credentials.File
	a.background(func(ctx context.Context) {
		f.Watch(ctx, credstore.FileWatch{
			Interval: fileCheckInterval,
			Changed: func(accessKey string) {
				a.Proxy.Invalidate(accessKey)
				m.Invalidations.Inc()
			},
			Loaded: func(n int) {
				a.Logger.Info("credential file reloaded", zap.String("file", path), zap.Int("credentials", n))
			},
			Failed: func(err error) {
				a.Logger.Error("credential file not reloaded: keeping the last good version", zap.String("file", path), zap.Error(err))
			},
		})
	})
}

func (a *App) background(run func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	a.closers = append(a.closers, func() error { cancel(); <-done; return nil })
}

// secretValue is a secret given in the configuration, or read from the
// file setting names (trimmed; an empty file is an error).
func secretValue(setting, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", setting, err)
	}
	if value = strings.TrimSpace(string(b)); value == "" {
		return "", fmt.Errorf("%s: %s is empty", setting, file)
	}
	return value, nil
}

// NewKeystoneClient builds the Keystone client and wires its metrics;
// shared, if not nil, shares tokens with other replicas.
func NewKeystoneClient(k configs.Keystone, m *metrics.Metrics, shared keystoneclient.SharedTokens) (*keystoneclient.Client, error) {
	password, err := secretValue("keystone.service_user.password_file", k.ServiceUser.Password, k.ServiceUser.PasswordFile)
	if err != nil {
		return nil, err
	}
	appSecret, err := secretValue("keystone.application_credential.secret_file", k.ApplicationCredential.Secret, k.ApplicationCredential.SecretFile)
	if err != nil {
		return nil, err
	}
	var t *tls.Config
	if configs.URLScheme(k.AuthURL) == "https" {
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
		AuthURL:                     k.AuthURL,
		Username:                    k.ServiceUser.Name,
		Password:                    password,
		ApplicationCredentialID:     k.ApplicationCredential.ID,
		ApplicationCredentialSecret: appSecret,
		UserDomainName:              k.ServiceUser.DomainName,
		ProjectName:                 k.ServiceUser.ProjectName,
		ProjectDomainName:           k.ServiceUser.ProjectDomainName,
		Timeout:                     k.Timeout,
		TLS:                         t,
		TokenMargin:                 k.TokenMargin,
		MaxTokens:                   k.MaxTokens,
		MaxConcurrent:               k.MaxConcurrent,
		Observe: func(op, result string, d time.Duration) {
			m.KeystoneCalls.WithLabelValues(op, result).Inc()
			m.KeystoneLatency.WithLabelValues(op).Observe(d.Seconds())
		},
		CacheObserve:  func(o flightcache.Outcome) { tokenCache[o].Inc() },
		Shared:        shared,
		SharedObserve: func(result string) { m.SharedTokens.WithLabelValues(result).Inc() },
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

// Close stops background work and releases connections to dependencies,
// in the reverse order of their creation.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
	a.closers = nil
}

// redisLogger sends go-redis's internal messages (dial failures) to zap,
// whose sampling keeps an outage from flooding the log.
type redisLogger struct{ l *zap.Logger }

func (r redisLogger) Printf(_ context.Context, format string, args ...any) {
	r.l.Warn("redis: " + fmt.Sprintf(format, args...))
}
