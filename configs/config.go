// Package configs holds ec2proxy's typed configuration: the struct, its
// defaults, loading from YAML plus environment overrides, and validation.
// Loading has no side effects: it dials nothing and opens no file but the
// configuration itself.
package configs

import (
	"fmt"
	"net/netip"
	"time"
)

// Config is the whole configuration. YAML keys are the `yaml` tags; every key
// can be overridden by an environment variable EC2PROXY_<PATH>, e.g.
// EC2PROXY_REDIS_ADDRS or EC2PROXY_KEYSTONE_SERVICE_USER_PASSWORD.
type Config struct {
	// Listen is the EC2 API listener address.
	Listen string `yaml:"listen"`
	// AdminListen serves /metrics, /healthz and /readyz; "" disables it.
	AdminListen string `yaml:"admin_listen"`

	Server      Server      `yaml:"server"`
	Routes      []Route     `yaml:"routes"`
	Backend     Backend     `yaml:"backend"`
	Auth        Auth        `yaml:"auth"`
	Credentials Credentials `yaml:"credentials"`
	Redis       Redis       `yaml:"redis"`
	Identity    Identity    `yaml:"identity"`
	Keystone    Keystone    `yaml:"keystone"`
	Protection  Protection  `yaml:"protection"`
	Policy      Policy      `yaml:"policy"`
	Log         Log         `yaml:"log"`
}

// Protection refuses abuse before it reaches Keystone or the backend.
type Protection struct {
	Lockout   Lockout   `yaml:"lockout"`
	RateLimit RateLimit `yaml:"rate_limit"`
	Replay    Replay    `yaml:"replay"`
	// AllowedHosts, if set, are the only Host header values served (with or
	// without port); any other gets 400 and nothing is verified or forwarded.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Lockout: MaxFailures distinct failed signatures for one access key within
// Window lock it for Duration (nova's defaults); for unknown access keys the
// client address is counted and locked instead. Shared through Redis.
type Lockout struct {
	Enabled     bool          `yaml:"enabled"`
	MaxFailures int           `yaml:"max_failures"`
	Window      time.Duration `yaml:"window"`
	Duration    time.Duration `yaml:"duration"`
}

// RateLimit is a token bucket per access key; 0 disables.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
	// Scope is "fleet" (one bucket per key shared by every replica through
	// Redis: one Redis call per request) or "replica" (in memory, each
	// replica its own bucket). Without Redis it is always per replica.
	Scope string `yaml:"scope"`
}

// Rate-limit scopes.
const (
	ScopeFleet   = "fleet"
	ScopeReplica = "replica"
)

// Replay refuses a signature seen before within the timestamp window. It
// costs one Redis round trip per request (SET NX), and a presigned URL then
// works once.
type Replay struct {
	Enabled bool `yaml:"enabled"`
}

// Server bounds what a client may send and how long it may take.
type Server struct {
	ReadTimeout     time.Duration `yaml:"read_timeout"`
	WriteTimeout    time.Duration `yaml:"write_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ShutdownDelay is how long a stopping replica keeps serving, every
	// answer saying Connection: close and /readyz answering 503, before it
	// stops accepting: long enough for a balancer's health checks to take
	// it out, so that closing its idle keep-alive connections cannot race a
	// request the balancer is sending on one.
	ShutdownDelay  time.Duration `yaml:"shutdown_delay"`
	MaxBodyBytes   int           `yaml:"max_body_bytes"`
	MaxHeaderBytes int           `yaml:"max_header_bytes"`
	Concurrency    int           `yaml:"concurrency"`
	// MemoryLimitMiB is a soft limit for the Go heap (runtime/debug
	// SetMemoryLimit); 0 leaves Go's default (GOMEMLIMIT, if set, else none).
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
	// GCPercent is Go's GC target (runtime/debug SetGCPercent): the heap
	// may grow this many percent over what the last GC found live before
	// the next one. The heap is mostly caches and the warm path allocates
	// nothing, so a lower target costs GC work only while caches fill; 0
	// leaves Go's default (GOGC, if set, else 100).
	GCPercent int `yaml:"gc_percent"`
	// TrustedProxies are CIDRs whose X-Forwarded-For/Proto headers are kept
	// and extended; from any other peer they are replaced.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol reads a PROXY protocol (v1 or v2) header on connections
	// from TrustedProxies (haproxy send-proxy); other peers' connections are
	// taken as they come.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// TLS serves the EC2 listener over TLS (for deployments without a
	// TLS-terminating balancer); a replaced certificate is picked up.
	TLS ServerTLS `yaml:"tls"`
	// RawSocketIO reads and writes client and backend sockets with system
	// calls the Go scheduler is not told about (Linux; see internal/rawsock).
	RawSocketIO bool `yaml:"raw_socket_io"`
	// EventLoop serves the EC2 listener from epoll loops of raw system
	// calls instead of a goroutine per connection (Linux). Requests that
	// need Redis or Keystone still run on goroutines. Where it cannot
	// serve (server.tls, server.proxy_protocol, not Linux) the goroutine
	// server does, and says so at start.
	EventLoop bool `yaml:"event_loop"`
	// IOUring lets each event loop batch a round's socket reads into one
	// system call and its writes into another (Linux io_uring; plain
	// system calls where it is unavailable). Only with EventLoop.
	IOUring bool `yaml:"io_uring"`
}

// TrustedPrefixes parses TrustedProxies (Validate has checked them).
func (s Server) TrustedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, cidr := range s.TrustedProxies {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %q: %w", cidr, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ServerTLS names the listener's certificate and key (PEM).
type ServerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Route sends requests whose path starts with PathPrefix to Backend. The
// longest matching prefix wins.
type Route struct {
	PathPrefix string `yaml:"path_prefix"`
	Backend    string `yaml:"backend"`
}

// Backend is how ec2proxy talks to the compute EC2 backends.
type Backend struct {
	Timeout     time.Duration `yaml:"timeout"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	MaxConns    int           `yaml:"max_conns"`
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	TLS         TLSClient     `yaml:"tls"`
}

// TLSClient configures an outgoing TLS connection.
type TLSClient struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	Insecure   bool   `yaml:"insecure"`
	ServerName string `yaml:"server_name"`
}

// Auth holds the signature rules.
type Auth struct {
	// TimestampWindow is how far a request's Timestamp may be from the
	// server clock, either way (nova's ec2_timestamp_expiry).
	TimestampWindow time.Duration `yaml:"timestamp_window"`
	// MaxExpiresAhead is how far in the future Expires may be.
	MaxExpiresAhead time.Duration `yaml:"max_expires_ahead"`
	// DisableSHA1 refuses SigV2 HmacSHA1 signatures.
	DisableSHA1 bool `yaml:"disable_sha1"`
	// SigV4Regions and SigV4Services, if set, are the only credential-scope
	// regions and services accepted. Empty accepts any: boto 2 derives them
	// from the host name and euca2ools invents a region.
	SigV4Regions  []string `yaml:"sigv4_regions"`
	SigV4Services []string `yaml:"sigv4_services"`
}

// Credential store kinds.
const (
	StoreFile  = "file"
	StoreRedis = "redis"
)

// Credentials says where access keys and secrets come from.
type Credentials struct {
	// Store is "file" or "redis". Default: redis when redis.addrs is set,
	// else file.
	Store string `yaml:"store"`
	// File is the credentials file of the file store.
	File string `yaml:"file"`
	// CacheTTL is how long a credential is served from memory before it is
	// read again.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// NegativeTTL is how long an unknown access key is remembered as unknown.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// StaleIfError keeps serving a cached credential this long past
	// CacheTTL while the store is unreachable; 0 disables.
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// MaxEntries bounds the in-memory cache (known and unknown keys).
	MaxEntries int `yaml:"max_entries"`
	// UnsubscribedTTL replaces CacheTTL while a replica is not subscribed to
	// change events (Redis store): changes then still arrive this quickly.
	UnsubscribedTTL time.Duration `yaml:"unsubscribed_ttl"`
	// EncryptionKeyFile seals secrets in Redis with AES-256-GCM (64 hex
	// digits; `ec2proxy creds genkey` writes one). OldEncryptionKeyFiles
	// still decrypt, for key rotation (see `ec2proxy creds reencrypt`).
	EncryptionKeyFile     string   `yaml:"encryption_key_file"`
	OldEncryptionKeyFiles []string `yaml:"old_encryption_key_files"`
	// AllowPlaintext stores secrets in Redis unencrypted; without it a Redis
	// store needs an encryption key.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// Redis is the connection to Redis: one address for a single node, several
// for Cluster, or sentinels with MasterName for Sentinel.
type Redis struct {
	Addrs        []string      `yaml:"addrs"`
	MasterName   string        `yaml:"master_name"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	DB           int           `yaml:"db"`
	KeyPrefix    string        `yaml:"key_prefix"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	PoolSize     int           `yaml:"pool_size"`
	// ClientName names ec2proxy's connections (CLIENT LIST, CLIENT KILL).
	ClientName string   `yaml:"client_name"`
	TLS        RedisTLS `yaml:"tls"`
}

// RedisTLS turns TLS to Redis on.
type RedisTLS struct {
	Enabled   bool `yaml:"enabled"`
	TLSClient `yaml:",inline"`
}

// Identity modes.
const (
	ModeKeystone   = "keystone"
	ModeStandalone = "standalone"
)

// Identity says where the identity forwarded to the backend comes from.
type Identity struct {
	// Mode is "keystone" (exchange for a Keystone token) or "standalone"
	// (identity from the credential record; no token).
	Mode string `yaml:"mode"`
}

// Keystone is the identity service used in keystone mode.
type Keystone struct {
	// AuthURL is Keystone's base URL, e.g. http://keystone:5000 (with or
	// without /v3).
	AuthURL     string      `yaml:"auth_url"`
	ServiceUser ServiceUser `yaml:"service_user"`
	// ApplicationCredential authenticates the service account instead of
	// ServiceUser's password (one of the two is set).
	ApplicationCredential ApplicationCredential `yaml:"application_credential"`
	Timeout               time.Duration         `yaml:"timeout"`
	// TokenMargin: cached tokens are dropped this long before they expire.
	TokenMargin time.Duration `yaml:"token_margin"`
	// MaxTokens bounds the per-access-key token cache.
	MaxTokens int `yaml:"max_tokens"`
	// MaxConcurrent bounds the ec2tokens calls in flight at once: cold
	// keys wait for a free one instead of all asking Keystone together.
	MaxConcurrent int       `yaml:"max_concurrent"`
	TLS           TLSClient `yaml:"tls"`
	// ShareTokens keeps tokens in Redis (sealed) so that one exchange per
	// access key serves every replica; only with the Redis store.
	ShareTokens bool `yaml:"share_tokens"`
}

// Policy is the authorization policy applied after authentication.
type Policy struct {
	// Enabled turns per-action authorization on.
	Enabled bool `yaml:"enabled"`
	// File is an oslo.policy rule file (JSON or YAML); empty: the shipped
	// default policy (configs/policy.yaml).
	File string `yaml:"file"`
	// CheckInterval is how often File's modification time is checked; a
	// changed file is reloaded once it has held still for one check, a broken
	// one ignored (the last good rules stay).
	CheckInterval time.Duration `yaml:"check_interval"`
}

// ServiceUser is the account ec2proxy authenticates as; Keystone requires the
// role service (or admin) for POST /v3/ec2tokens.
type ServiceUser struct {
	Name              string `yaml:"name"`
	Password          string `yaml:"password"`
	PasswordFile      string `yaml:"password_file"`
	DomainName        string `yaml:"domain_name"`
	ProjectName       string `yaml:"project_name"`
	ProjectDomainName string `yaml:"project_domain_name"`
}

// ApplicationCredential is an application credential of the service
// account (openstack application credential create): its token has the
// project and roles it was made with, role service included; it can be
// revoked or replaced without changing the user's password.
type ApplicationCredential struct {
	ID         string `yaml:"id"`
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or console
	// Access logs every request at info level (rejections are always logged).
	Access bool `yaml:"access"`
}

// Default returns the configuration used for keys a file leaves out.
func Default() Config {
	return Config{
		Listen:      ":8773",
		AdminListen: "127.0.0.1:8774",
		Server: Server{
			ReadTimeout:     10 * time.Second,
			WriteTimeout:    30 * time.Second,
			IdleTimeout:     90 * time.Second,
			ShutdownTimeout: 25 * time.Second,
			MaxBodyBytes:    1 << 20,
			MaxHeaderBytes:  16 << 10,
			Concurrency:     256 * 1024,
			GCPercent:       50,
			RawSocketIO:     true,
			EventLoop:       true,
			IOUring:         true,
		},
		Backend: Backend{
			Timeout:     60 * time.Second,
			DialTimeout: 3 * time.Second,
			MaxConns:    1024,
			IdleTimeout: 60 * time.Second,
		},
		Auth: Auth{
			TimestampWindow: 300 * time.Second,
			MaxExpiresAhead: 15 * time.Minute,
		},
		Credentials: Credentials{
			CacheTTL:     60 * time.Second,
			NegativeTTL:  10 * time.Second,
			StaleIfError: 5 * time.Minute,
			MaxEntries:   1_000_000,

			UnsubscribedTTL: time.Second,
		},
		Redis: Redis{
			KeyPrefix:    "ec2proxy:v1:",
			ClientName:   "ec2proxy",
			DialTimeout:  time.Second,
			ReadTimeout:  500 * time.Millisecond,
			WriteTimeout: 500 * time.Millisecond,
		},
		Identity: Identity{Mode: ModeKeystone},
		Keystone: Keystone{
			Timeout:       5 * time.Second,
			TokenMargin:   5 * time.Minute,
			MaxTokens:     1_000_000,
			MaxConcurrent: 16,
			ShareTokens:   true,
			ServiceUser:   ServiceUser{DomainName: "Default", ProjectName: "service", ProjectDomainName: "Default"},
		},
		Protection: Protection{
			Lockout:   Lockout{Enabled: true, MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute},
			RateLimit: RateLimit{Scope: ScopeFleet},
		},
		Policy: Policy{CheckInterval: time.Second},
		Log:    Log{Level: "info", Format: "json"},
	}
}
