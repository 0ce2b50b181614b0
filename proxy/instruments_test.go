package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2proxy/ec2proxy/metrics"
)

// Every series the proxy resolves ahead has its labels set: an empty one
// (outcome="" once came from indexing past the counted outcomes) is a
// series that means nothing on a dashboard.
func TestInstrumentsLabelled(t *testing.T) {
	reg := prometheus.NewRegistry()
	newInstruments(metrics.New(reg, "ec2proxy"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == "" {
					t.Errorf("%s has a series with %s=\"\"", mf.GetName(), l.GetName())
				}
			}
		}
	}
}

// A backend's connect-failure series exists at 0 from the start, so an
// alert on its rate sees the first failure.
func TestBackendConnectFailuresSeriesAtStart(t *testing.T) {
	h := newHarness(t)
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	backend := strings.TrimPrefix(h.backendURL, "http://")
	for _, mf := range mfs {
		if mf.GetName() != "ec2proxy_backend_connect_failures_total" {
			continue
		}
		for _, m := range mf.Metric {
			if len(m.Label) == 1 && m.Label[0].GetName() == "backend" && m.Label[0].GetValue() == backend && m.Counter.GetValue() == 0 {
				return
			}
		}
		t.Fatalf("%s: %v; want a series {backend=%q} at 0", mf.GetName(), mf.Metric, backend)
	}
	t.Fatal("no ec2proxy_backend_connect_failures_total before any failure")
}
