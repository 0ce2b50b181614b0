// Package metrics defines ec2proxy's Prometheus collectors. Nothing is
// global: New registers them on the registry it is given. Labels are
// bounded: error codes from a fixed table, outcomes, status classes; never an
// access key.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "ec2proxy"

// Metrics holds every collector.
type Metrics struct {
	Requests        *prometheus.CounterVec   // outcome, code
	RequestDuration *prometheus.HistogramVec // outcome
	VerifyDuration  *prometheus.HistogramVec // version
	CacheLookups    *prometheus.CounterVec   // cache, result
	KeystoneCalls   *prometheus.CounterVec   // op, result
	KeystoneLatency *prometheus.HistogramVec // op
	StoreCalls      *prometheus.CounterVec   // op, result
	StoreLatency    *prometheus.HistogramVec // op
	BackendStatus   *prometheus.CounterVec   // class
	BackendLatency  prometheus.Histogram
	BackendConnects *prometheus.CounterVec // backend: failed connections
	BuildInfo       *prometheus.GaugeVec   // version, goversion
	Lockouts        *prometheus.CounterVec // kind

	SharedTokens  *prometheus.CounterVec // result
	Invalidations prometheus.Counter
	Subscribed    prometheus.Gauge
	ProxyProtocol *prometheus.CounterVec // result
	Policy        *prometheus.CounterVec // action, result
	PolicyReloads *prometheus.CounterVec // result
	EventLoop     *prometheus.CounterVec // path

	reg prometheus.Registerer
}

// Latency buckets from 50µs (cached verification) to 10s (cold Keystone).
var buckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "EC2 API requests by outcome (forwarded, rejected, failed) and EC2 error code (OK when forwarded).",
		}, []string{"outcome", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds", Buckets: buckets,
			Help: "Time from request read to response written, by outcome.",
		}, []string{"outcome"}),
		VerifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "verify_duration_seconds", Buckets: buckets,
			Help: "Time to parse and verify a signature, credential lookup included, by signature version.",
		}, []string{"version"}),
		CacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cache_lookups_total",
			Help: "In-process cache lookups by cache (credential, token) and result (hit, negative_hit, miss, stale).",
		}, []string{"cache", "result"}),
		KeystoneCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "keystone_requests_total",
			Help: "Calls to Keystone by operation (auth, ec2tokens, validate: a token the backend refused) and result (ok, rejected, error).",
		}, []string{"op", "result"}),
		KeystoneLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "keystone_request_duration_seconds", Buckets: buckets,
			Help: "Latency of calls to Keystone by operation.",
		}, []string{"op"}),
		StoreCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_requests_total",
			Help: "Reads from the credential store (Redis or file) by operation and result (ok, not_found, error).",
		}, []string{"op", "result"}),
		StoreLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "store_request_duration_seconds", Buckets: buckets,
			Help: "Latency of credential store reads by operation.",
		}, []string{"op"}),
		BackendStatus: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "backend_responses_total",
			Help: "Backend answers by status class (1xx to 5xx) or failure (error, timeout).",
		}, []string{"class"}),
		BackendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "backend_duration_seconds", Buckets: buckets,
			Help: "Time the backend took to answer a forwarded request.",
		}),
		BackendConnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "backend_connect_failures_total",
			Help: "Connections to a backend (its configured host:port) that failed: refused, unreachable, or not connected within backend.dial_timeout (not a failed name lookup). The event loop counts each address of a name it tried (a refused request moves to the next one); the goroutine pipeline one per failed dial (fasthttp tried the addresses in turn until one timed out or all refused).",
		}, []string{"backend"}),
		Lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "lockouts_total",
			Help: "Locks set after too many failed signatures, by kind (access_key, client).",
		}, []string{"kind"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; labels give the ec2proxy and Go versions.",
		}, []string{"version", "goversion"}),
		SharedTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "shared_tokens_total",
			Help: "Uses of the Keystone tokens replicas share in Redis, by result (hit, miss, error, stored, store_error).",
		}, []string{"result"}),
		Invalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "invalidations_total",
			Help: "Credential changes applied to the caches: announced on the events channel (Redis store) or found in a changed credentials file (file store).",
		}),
		Subscribed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "events_subscribed",
			Help: "Redis store: 1 while subscribed to credential change events; 0 while not (caches then use credentials.unsubscribed_ttl). Always 0 with the file store.",
		}),
		ProxyProtocol: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "proxy_protocol_errors_total",
			Help: "Connections from trusted proxies closed because their PROXY protocol header was missing or malformed.",
		}, []string{"reason"}),
		Policy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_decisions_total",
			Help: "Authorization decisions by EC2 action (those the policy names; other) and result (allow, deny).",
		}, []string{"action", "result"}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_reloads_total",
			Help: "Policy file reloads after it changed, by result (ok, error: the last good rules stay).",
		}, []string{"result"}),
		EventLoop: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "event_loop_requests_total",
			Help: "With server.event_loop: requests by where they were served (loop: entirely in the event loop, forwarded or refused, or forwarded and refused by a backend with a revoked token, then sent again from a goroutine; goroutine: they needed Redis or Keystone (a cache miss, a Redis-backed protection, a failed signature not yet counted for the lockout) and ran on a goroutine; handoff: connections given to the goroutine server for a request the loop does not parse; refused: connections answered 503 and closed because server.concurrency were open).",
		}, []string{"path"}),
	}
	m.reg = reg
	reg.MustRegister(m.Requests, m.RequestDuration, m.VerifyDuration, m.CacheLookups, m.KeystoneCalls,
		m.KeystoneLatency, m.StoreCalls, m.StoreLatency, m.BackendStatus, m.BackendLatency, m.BackendConnects, m.BuildInfo, m.Lockouts,
		m.SharedTokens, m.Invalidations, m.Subscribed, m.ProxyProtocol, m.Policy, m.PolicyReloads, m.EventLoop)
	m.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	return m
}

// RegisterCacheSize exports ec2proxy_cache_entries{cache=name}, read from
// size at scrape time.
func (m *Metrics) RegisterCacheSize(name string, size func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "cache_entries",
		Help:        "Entries held by an in-process cache (credential, token).",
		ConstLabels: prometheus.Labels{"cache": name},
	}, func() float64 { return float64(size()) }))
}
