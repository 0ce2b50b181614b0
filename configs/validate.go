package configs

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate returns every problem with c; nil means c is usable. It opens no
// file and dials nothing: files named in the configuration are checked when
// they are used.
func (c *Config) Validate() Problems {
	var p Problems
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	checkAddr := func(key, addr string, optional bool) {
		if addr == "" {
			if !optional {
				add("%s: an address (host:port, such as 127.0.0.1:6379 or :8773) is required", key)
			}
			return
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			if shown := redacted(addr); shown != addr {
				add("%s: %q is a URL with a password: write host:port (the password goes in redis.password_file)", key, shown)
			} else {
				add("%s: %q is not host:port", key, addr)
			}
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			add("%s: %q: the port must be a number from 0 to 65535", key, addr)
		}
	}
	checkAddr("listen", c.Listen, false)
	checkAddr("admin_listen", c.AdminListen, true)
	if sameSocket(c.Listen, c.AdminListen) {
		add("admin_listen: %q and listen %q would bind the same port", c.AdminListen, c.Listen)
	}

	positive := func(key string, d time.Duration) {
		if d <= 0 {
			add("%s: must be a positive duration such as 5s, got %v", key, d)
		}
	}
	positive("server.read_timeout", c.Server.ReadTimeout)
	positive("server.write_timeout", c.Server.WriteTimeout)
	positive("server.idle_timeout", c.Server.IdleTimeout)
	positive("server.shutdown_timeout", c.Server.ShutdownTimeout)
	if c.Server.ShutdownDelay < 0 || c.Server.ShutdownDelay > 5*time.Minute {
		add("server.shutdown_delay: must be between 0s (stop accepting at once) and 5m, got %v", c.Server.ShutdownDelay)
	}
	// The tops keep the event loop's per-connection bound (header, body
	// and a little more) far from int overflow, which let a connection
	// buffer without limit (found by a review); no EC2 call comes near.
	if c.Server.MaxBodyBytes < 1024 || c.Server.MaxBodyBytes > maxBodyBytes {
		add("server.max_body_bytes: must be from 1024 to %d (1 GiB), got %d", maxBodyBytes, c.Server.MaxBodyBytes)
	}
	if c.Server.MaxHeaderBytes < 4096 || c.Server.MaxHeaderBytes > maxHeaderBytes {
		add("server.max_header_bytes: must be from 4096 to %d (1 MiB), got %d", maxHeaderBytes, c.Server.MaxHeaderBytes)
	}
	if c.Server.MemoryLimitMiB < 0 || c.Server.MemoryLimitMiB > 0 && c.Server.MemoryLimitMiB < 32 || c.Server.MemoryLimitMiB > 1<<24 {
		// The top (16 TiB) keeps MiB<<20 in range: 2^44 MiB wrapped to a
		// limit of 0, and the GC ran without pause (found by a review).
		add("server.memory_limit_mib: must be 0 (no limit) or from 32 to 16777216, got %d", c.Server.MemoryLimitMiB)
	}
	if c.Server.GCPercent < 0 || c.Server.GCPercent > 0 && c.Server.GCPercent < 10 {
		add("server.gc_percent: must be 0 (Go's default) or at least 10, got %d", c.Server.GCPercent)
	}
	if c.Server.Concurrency < 1 {
		add("server.concurrency: must be at least 1")
	}
	if (c.Server.TLS.CertFile == "") != (c.Server.TLS.KeyFile == "") {
		add("server.tls: cert_file and key_file go together")
	}
	for _, cidr := range c.Server.TrustedProxies {
		// As TrustedPrefixes parses them: net.ParseCIDR accepts "/08",
		// which check-config passed and serve then refused (a review).
		if _, err := netip.ParsePrefix(cidr); err != nil {
			add("server.trusted_proxies: %q is not a CIDR such as 10.0.0.0/8", cidr)
		}
	}
	if c.Server.ProxyProtocol && len(c.Server.TrustedProxies) == 0 {
		add("server.proxy_protocol: needs server.trusted_proxies, the balancers allowed to send PROXY headers")
	}
	if c.Policy.Enabled {
		positive("policy.check_interval", c.Policy.CheckInterval)
	} else if c.Policy.File != "" {
		// As with the other settings that would be ignored: an operator
		// who wrote a policy file expects it applied (found by a review).
		add("policy.file: set, but policy.enabled is false, so no request would be checked against it")
	}

	if len(c.Routes) == 0 {
		add("routes: at least one route (path_prefix and backend) is required")
	}
	seen := map[string]bool{}
	for i, r := range c.Routes {
		if !strings.HasPrefix(r.PathPrefix, "/") {
			add("routes[%d].path_prefix: must start with /, got %q", i, r.PathPrefix)
		}
		if seen[r.PathPrefix] {
			add("routes[%d].path_prefix: %q is routed twice", i, r.PathPrefix)
		}
		seen[r.PathPrefix] = true
		key := fmt.Sprintf("routes[%d].backend", i)
		if checkURL(&p, key, r.Backend) {
			// Requests keep their own path: one here would be dropped.
			u, _ := url.Parse(r.Backend)
			if u.Path != "" && u.Path != "/" {
				add("%s: %q must have no path (requests are forwarded with the path they came with): write %s://%s", key, r.Backend, u.Scheme, u.Host)
			}
			// fasthttp would split a list itself, the event loop would not;
			// and metrics and logs name the backend by this one string.
			if strings.Contains(u.Host, ",") {
				add("%s: %q names several hosts: give one, with an address record per compute host (docs/deployment.md)", key, r.Backend)
			}
		}
	}
	positive("backend.timeout", c.Backend.Timeout)
	positive("backend.dial_timeout", c.Backend.DialTimeout)
	positive("backend.idle_timeout", c.Backend.IdleTimeout)
	if c.Backend.MaxConns < 1 {
		add("backend.max_conns: must be at least 1")
	}
	checkTLSClient(&p, "backend.tls", c.Backend.TLS)
	if c.Backend.TLS != (TLSClient{}) && len(c.Routes) > 0 && !slices.ContainsFunc(c.Routes, func(r Route) bool { return URLScheme(r.Backend) == "https" }) {
		add("backend.tls: set, but every routes[].backend is plain http://, so it would not be used")
	}

	positive("auth.timestamp_window", c.Auth.TimestampWindow)
	positive("auth.max_expires_ahead", c.Auth.MaxExpiresAhead)
	if c.Auth.TimestampWindow > time.Hour {
		add("auth.timestamp_window: %v is more than 1h; a wide window makes captured requests replayable for longer", c.Auth.TimestampWindow)
	}
	if c.Auth.MaxExpiresAhead > 7*24*time.Hour {
		add("auth.max_expires_ahead: %v is more than 7 days (168h), the longest a SigV4 presigned URL lives; a request with Expires that far ahead could be replayed until then", c.Auth.MaxExpiresAhead)
	}

	switch c.Credentials.Store {
	case StoreFile, StoreRedis:
	default:
		add("credentials.store: must be %q or %q, got %q", StoreFile, StoreRedis, c.Credentials.Store)
	}
	if c.Credentials.Store == StoreFile && c.Credentials.File == "" {
		add("credentials.file: required when credentials.store is file")
	}
	if c.Credentials.Store == StoreFile && len(c.Redis.Addrs) > 0 {
		add("redis.addrs: set, but credentials.store is file, and only the redis store uses Redis (with it the lockout, the fleet rate limit, replay markers and tokens are shared): set credentials.store: redis, or remove redis.addrs")
	}
	if c.Credentials.Store == StoreRedis && len(c.Redis.Addrs) == 0 {
		add("redis.addrs: required when credentials.store is redis")
	}
	if c.Credentials.Store == StoreRedis && c.Credentials.EncryptionKeyFile == "" && !c.Credentials.AllowPlaintext {
		add("credentials.encryption_key_file: required for the redis store, so secrets are not kept in plain text (create one with `ec2proxy creds genkey -o FILE`; or set credentials.allow_plaintext: true)")
	}
	if cr := c.Credentials; cr.Store == StoreFile && (cr.EncryptionKeyFile != "" || len(cr.OldEncryptionKeyFiles) > 0 || cr.AllowPlaintext) {
		// The file store keeps secrets as written, protected by the file's
		// mode; a key here would suggest they are encrypted.
		add("credentials.encryption_key_file, old_encryption_key_files and allow_plaintext: set, but they apply only to the redis store, and credentials.store is file: remove them")
	}
	if len(c.Credentials.OldEncryptionKeyFiles) > 0 && c.Credentials.EncryptionKeyFile == "" {
		add("credentials.old_encryption_key_files: needs credentials.encryption_key_file, the current key")
	}
	positive("credentials.cache_ttl", c.Credentials.CacheTTL)
	positive("credentials.negative_ttl", c.Credentials.NegativeTTL)
	if c.Credentials.StaleIfError < 0 {
		add("credentials.stale_if_error: must not be negative")
	}
	// The caches are split in 64 parts with at least one entry each, and a
	// smaller bound would send most requests to the store or Keystone.
	if c.Credentials.MaxEntries < minCacheEntries {
		add("credentials.max_entries: must be at least %d, got %d", minCacheEntries, c.Credentials.MaxEntries)
	}
	positive("credentials.unsubscribed_ttl", c.Credentials.UnsubscribedTTL)

	for i, a := range c.Redis.Addrs {
		checkAddr(fmt.Sprintf("redis.addrs[%d]", i), a, false)
	}
	if c.Redis.Password != "" && c.Redis.PasswordFile != "" {
		add("redis: set password or password_file, not both")
	}
	if c.Redis.KeyPrefix == "" {
		add("redis.key_prefix: must not be empty")
	}
	if c.Redis.DB < 0 {
		add("redis.db: must not be negative, got %d", c.Redis.DB)
	}
	if c.Redis.DB != 0 && len(c.Redis.Addrs) > 1 && c.Redis.MasterName == "" {
		// Several addresses without master_name is a Cluster, which has
		// only database 0: go-redis would ignore the setting.
		add("redis.db: %d, but several redis.addrs without master_name is a Redis Cluster, which has only database 0: use redis.key_prefix to keep deployments apart", c.Redis.DB)
	}
	if c.Redis.PoolSize < 0 {
		add("redis.pool_size: must not be negative (0: go-redis's default), got %d", c.Redis.PoolSize)
	}
	if len(c.Redis.Addrs) > 0 {
		positive("redis.dial_timeout", c.Redis.DialTimeout)
		positive("redis.read_timeout", c.Redis.ReadTimeout)
		positive("redis.write_timeout", c.Redis.WriteTimeout)
	}
	checkTLSClient(&p, "redis.tls", c.Redis.TLS.TLSClient)
	if !c.Redis.TLS.Enabled && c.Redis.TLS.TLSClient != (TLSClient{}) {
		add("redis.tls: files or settings are given but redis.tls.enabled is false, so Redis would be spoken to in plain text: set enabled: true, or remove them")
	}

	switch c.Identity.Mode {
	case ModeKeystone:
		k := c.Keystone
		if k.AuthURL == "" {
			add("keystone.auth_url: required when identity.mode is keystone (or set identity.mode: standalone)")
		} else {
			checkURL(&p, "keystone.auth_url", k.AuthURL)
		}
		switch ac := k.ApplicationCredential; {
		case ac != ApplicationCredential{}:
			if k.ServiceUser.Name != "" || k.ServiceUser.Password != "" || k.ServiceUser.PasswordFile != "" {
				add("keystone: set service_user (name and password) or application_credential, not both")
			} else if su, def := k.ServiceUser, Default().Keystone.ServiceUser; su.DomainName != "" && su.DomainName != def.DomainName ||
				su.ProjectName != "" && su.ProjectName != def.ProjectName || su.ProjectDomainName != "" && su.ProjectDomainName != def.ProjectDomainName {
				// Silently ignored, they would mislead whoever reads the
				// file about the account's project.
				add("keystone.service_user: its domain and project names have no effect with keystone.application_credential, whose token has the project it was created in: remove them")
			}
			if ac.ID == "" {
				add("keystone.application_credential.id: required (openstack application credential show NAME -c id)")
			}
			if (ac.Secret == "") == (ac.SecretFile == "") {
				add("keystone.application_credential: set exactly one of secret and secret_file")
			}
		default:
			if k.ServiceUser.Name == "" {
				add("keystone.service_user.name: required (or keystone.application_credential); Keystone refuses ec2tokens calls without a service token")
			}
			if (k.ServiceUser.Password == "") == (k.ServiceUser.PasswordFile == "") {
				add("keystone.service_user: set exactly one of password and password_file")
			}
			if k.ServiceUser.ProjectName == "" {
				add("keystone.service_user.project_name: required")
			}
		}
		positive("keystone.timeout", k.Timeout)
		if k.TokenMargin < 0 {
			add("keystone.token_margin: must not be negative")
		}
		if k.MaxTokens < minCacheEntries {
			add("keystone.max_tokens: must be at least %d, got %d", minCacheEntries, k.MaxTokens)
		}
		if k.MaxConcurrent < 1 {
			add("keystone.max_concurrent: must be at least 1")
		}
		checkTLSClient(&p, "keystone.tls", k.TLS)
		if k.TLS != (TLSClient{}) && URLScheme(k.AuthURL) == "http" {
			add("keystone.tls: set, but keystone.auth_url %q is plain http://, so it would not be used", k.AuthURL)
		}
	case ModeStandalone:
	default:
		add("identity.mode: must be %q or %q, got %q", ModeKeystone, ModeStandalone, c.Identity.Mode)
	}

	if l := c.Protection.Lockout; l.Enabled {
		if l.MaxFailures < 1 {
			add("protection.lockout.max_failures: must be at least 1")
		}
		positive("protection.lockout.window", l.Window)
		positive("protection.lockout.duration", l.Duration)
	}
	if r := c.Protection.RateLimit; math.IsNaN(r.RequestsPerSecond) || math.IsInf(r.RequestsPerSecond, 0) {
		add("protection.rate_limit.requests_per_second: must be a number, got %v", r.RequestsPerSecond)
	} else if r.RequestsPerSecond < 0 || r.Burst < 0 || r.RequestsPerSecond > 0 && r.Burst < 1 {
		add("protection.rate_limit: requests_per_second and burst must not be negative, and burst must be at least 1 when a rate is set")
	} else if r.RequestsPerSecond == 0 && r.Burst > 0 {
		add("protection.rate_limit.burst: set, but requests_per_second is 0, so there is no rate limit: set a rate, or remove burst")
	} else if r.RequestsPerSecond > maxRatePerKey {
		// The fleet's buckets count in microseconds: above this the
		// interval is 0, and Redis refused every update (a review).
		add("protection.rate_limit.requests_per_second: at most %d (per access key), got %v", maxRatePerKey, r.RequestsPerSecond)
	}
	if sc := c.Protection.RateLimit.Scope; sc != ScopeFleet && sc != ScopeReplica {
		add("protection.rate_limit.scope: must be %q or %q, got %q", ScopeFleet, ScopeReplica, sc)
	}
	for i, h := range c.Protection.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			add("protection.allowed_hosts[%d]: %q is not a host name or host:port", i, h)
		}
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		add("log.format: must be json or console, got %q", c.Log.Format)
	}
	return p
}

// URLScheme is raw's scheme, lower-cased as URL schemes compare ("" if raw
// does not parse). A prefix test for "https://" missed HTTPS://, which
// Validate accepts and the clients connect to with TLS: keystone.tls was
// then never read (found by a review).
func URLScheme(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme // url.Parse lower-cases it
}

// checkURL adds a problem unless raw is an http(s) URL without query or
// fragment, and reports whether it is.
func checkURL(p *Problems, key, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		*p = append(*p, fmt.Sprintf("%s: %q is not an http:// or https:// URL", key, redacted(raw)))
		return false
	}
	if u.RawQuery != "" || u.Fragment != "" {
		*p = append(*p, fmt.Sprintf("%s: %q must not have a query or fragment", key, redacted(raw)))
		return false
	}
	if u.User != nil { // never used: a password there would only be shown about
		*p = append(*p, fmt.Sprintf("%s: %q must not hold a user name or password: write %s://%s", key, redacted(raw), u.Scheme, u.Host))
		return false
	}
	return true
}

// redacted is raw with the password of a URL's user information replaced
// by "xxxxx": messages go to the journal (check-config runs as
// ExecStartPre), and operators used to Redis URLs write
// redis://:password@host:6379 (found by a review).
func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return raw
}

func checkTLSClient(p *Problems, key string, t TLSClient) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		*p = append(*p, fmt.Sprintf("%s: cert_file and key_file go together", key))
	}
}

// sameSocket reports two listen addresses that cannot both be bound: the
// same port, on the same host or where one is a wildcard ("", 0.0.0.0,
// ::). Comparing the strings let 0.0.0.0:8773 and 127.0.0.1:8773 pass
// check-config, then fail at start (found by a review). Port 0 is any.
func sameSocket(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || a == "" || b == "" || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	localhost := func(h, other string) bool { return h == "localhost" && (other == "127.0.0.1" || other == "::1") }
	return ha == hb || wildcard(ha) || wildcard(hb) || localhost(ha, hb) || localhost(hb, ha)
}

// maxRatePerKey is the highest protection.rate_limit.requests_per_second:
// one request a microsecond.
const maxRatePerKey = 1_000_000

// Upper bounds of server.max_body_bytes and server.max_header_bytes, and
// the least credentials.max_entries and keystone.max_tokens.
const (
	minCacheEntries = 1000
	maxBodyBytes    = 1 << 30
	maxHeaderBytes  = 1 << 20
)
