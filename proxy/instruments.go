package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/internal/flightcache"
	"github.com/ec2proxy/ec2proxy/metrics"
)

type outcome uint8

const (
	outcomeForwarded outcome = iota
	outcomeRejected          // the client's fault: 4xx
	outcomeFailed            // ours or a dependency's: 5xx
	numOutcomes              // the counted ones
)

// Event-loop outcomes, never counted.
const (
	// outcomeHandoff: the event loop cannot serve this request without
	// blocking or answering an error; the goroutine server takes it over.
	outcomeHandoff outcome = 255
	// outcomeAdmit: the event loop asks the guards after verification on a
	// goroutine (they call Redis), then goes on in the loop.
	outcomeAdmit outcome = 254
)

var outcomeNames = [numOutcomes]string{"forwarded", "rejected", "failed"}

// instruments resolves every labelled series once, so the hot path only
// adds to counters.
type instruments struct {
	forwarded                              prometheus.Counter
	rejected                               [numErrorCodes]prometheus.Counter
	duration                               [numOutcomes]prometheus.Observer
	verifyV2                               prometheus.Observer
	verifyV4                               prometheus.Observer
	credCache                              [flightcache.NumOutcomes]prometheus.Counter
	backendClass                           [6]prometheus.Counter // 1xx..5xx by index, 0 = error
	backendTimout                          prometheus.Counter
	backendTime                            prometheus.Observer
	backendConnects                        *prometheus.CounterVec
	storeOK, storeNotFound, storeError     prometheus.Counter
	storeTime                              prometheus.Observer
	lockouts                               *prometheus.CounterVec
	loopServed, loopGoroutine, loopHandoff prometheus.Counter
	loopRefused                            prometheus.Counter
}

func newInstruments(m *metrics.Metrics) *instruments {
	in := &instruments{forwarded: m.Requests.WithLabelValues("forwarded", "OK")}
	for code := errorCode(1); code < numErrorCodes; code++ {
		e := errorTable[code]
		o := outcomeRejected
		if e.status >= 500 {
			o = outcomeFailed
		}
		in.rejected[code] = m.Requests.WithLabelValues(outcomeNames[o], e.code)
	}
	for o := range numOutcomes {
		in.duration[o] = m.RequestDuration.WithLabelValues(outcomeNames[o])
	}
	in.verifyV2 = m.VerifyDuration.WithLabelValues("2")
	in.verifyV4 = m.VerifyDuration.WithLabelValues("4")
	for o := range flightcache.NumOutcomes {
		in.credCache[o] = m.CacheLookups.WithLabelValues("credential", o.String())
	}
	in.backendClass[0] = m.BackendStatus.WithLabelValues("error")
	for i, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		in.backendClass[i+1] = m.BackendStatus.WithLabelValues(class)
	}
	in.backendTimout = m.BackendStatus.WithLabelValues("timeout")
	in.backendTime = m.BackendLatency
	in.backendConnects = m.BackendConnects
	in.storeOK = m.StoreCalls.WithLabelValues("get", "ok")
	in.storeNotFound = m.StoreCalls.WithLabelValues("get", "not_found")
	in.storeError = m.StoreCalls.WithLabelValues("get", "error")
	in.storeTime = m.StoreLatency.WithLabelValues("get")
	in.loopServed = m.EventLoop.WithLabelValues("loop")
	in.loopGoroutine = m.EventLoop.WithLabelValues("goroutine")
	in.loopHandoff = m.EventLoop.WithLabelValues("handoff")
	in.loopRefused = m.EventLoop.WithLabelValues("refused")
	in.lockouts = m.Lockouts
	return in
}

func (in *instruments) requestDone(o outcome, d time.Duration) {
	if o == outcomeForwarded {
		in.forwarded.Inc()
	}
	in.duration[o].Observe(d.Seconds())
}

func (in *instruments) reject(code errorCode) { in.rejected[code].Inc() }

// connectFailed counts a failed connection to backend (host:port, as
// configured): a failure path, so the series is looked up here.
func (in *instruments) connectFailed(backend string) {
	in.backendConnects.WithLabelValues(backend).Inc()
}

func (in *instruments) verified(version int, d time.Duration) {
	if version == 4 {
		in.verifyV4.Observe(d.Seconds())
		return
	}
	in.verifyV2.Observe(d.Seconds())
}

func (in *instruments) credentialCache(o flightcache.Outcome) { in.credCache[o].Inc() }

func (in *instruments) backendDone(status int, err error, d time.Duration) {
	switch {
	case isTimeout(err):
		in.backendTimout.Inc()
	case err != nil:
		in.backendClass[0].Inc()
	case status >= 100 && status < 600:
		in.backendClass[status/100].Inc()
	}
	in.backendTime.Observe(d.Seconds())
}

// instrumentedBackend counts and times credential store reads.
type instrumentedBackend struct {
	credstore.Backend
	m *instruments
}

func instrumentBackend(b credstore.Backend, m *instruments) credstore.Backend {
	return instrumentedBackend{b, m}
}

func (b instrumentedBackend) Get(ctx context.Context, accessKey string) (credstore.Record, error) {
	start := time.Now()
	r, err := b.Backend.Get(ctx, accessKey)
	b.m.storeTime.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		b.m.storeOK.Inc()
	case errors.Is(err, credstore.ErrNotFound):
		b.m.storeNotFound.Inc()
	default:
		b.m.storeError.Inc()
	}
	return r, err
}

func (in *instruments) lockout(kind string) { in.lockouts.WithLabelValues(kind).Inc() }
