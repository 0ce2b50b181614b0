package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyCheck is one dependency /readyz asks about.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// NewAdminHandler serves /metrics, /healthz (the process answers) and
// /readyz (every dependency answers; results are cached for a second so
// that probes cannot load Redis or Keystone).
func NewAdminHandler(g prometheus.Gatherer, checks []ReadyCheck) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	r := &readiness{checks: checks}
	mux.HandleFunc("GET /readyz", r.serve)
	return mux
}

type readiness struct {
	checks []ReadyCheck
	mu     sync.Mutex
	at     time.Time
	report string
	ok     bool
}

func (r *readiness) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if time.Since(r.at) > time.Second {
		// Not the asking probe's context: its result is every probe's for a
		// second, and a probe that gave up (a balancer's short check
		// timeout) cancelled the checks, so a healthy replica answered 503
		// to all (found by a review).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), 2*time.Second)
		r.ok, r.report = runChecks(ctx, r.checks)
		cancel()
		r.at = time.Now()
	}
	ok, report := r.ok, r.report
	r.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, report)
}

func runChecks(ctx context.Context, checks []ReadyCheck) (bool, string) {
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Check(ctx)
		}()
	}
	wg.Wait()
	var b strings.Builder
	ok := true
	for i, c := range checks {
		if errs[i] != nil {
			ok = false
			fmt.Fprintf(&b, "%s: %v\n", c.Name, errs[i])
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c.Name)
		}
	}
	return ok, b.String()
}
