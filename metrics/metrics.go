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
	BuildInfo       *prometheus.GaugeVec   // version, goversion
	Lockouts        *prometheus.CounterVec // kind

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
			Help: "Calls to Keystone by operation (auth, ec2tokens) and result (ok, rejected, error).",
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
			Help: "Backend answers by status class (2xx, 3xx, 4xx, 5xx) or failure (error, timeout).",
		}, []string{"class"}),
		BackendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "backend_duration_seconds", Buckets: buckets,
			Help: "Time the backend took to answer a forwarded request.",
		}),
		Lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "lockouts_total",
			Help: "Locks set after too many failed signatures, by kind (access_key, client).",
		}, []string{"kind"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; labels give the ec2proxy and Go versions.",
		}, []string{"version", "goversion"}),
	}
	m.reg = reg
	reg.MustRegister(m.Requests, m.RequestDuration, m.VerifyDuration, m.CacheLookups, m.KeystoneCalls,
		m.KeystoneLatency, m.StoreCalls, m.StoreLatency, m.BackendStatus, m.BackendLatency, m.BuildInfo, m.Lockouts)
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
