package metrics

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestMetricsAreLintedAndDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "test")
	m.RegisterCacheSize("credential", func() int { return 1 })
	// Touch every vector once so that Gather returns it.
	m.Requests.WithLabelValues("forwarded", "OK")
	m.RequestDuration.WithLabelValues("forwarded")
	m.VerifyDuration.WithLabelValues("2")
	m.CacheLookups.WithLabelValues("credential", "hit")
	m.KeystoneCalls.WithLabelValues("ec2tokens", "ok")
	m.KeystoneLatency.WithLabelValues("ec2tokens")
	m.StoreCalls.WithLabelValues("get", "ok")
	m.StoreLatency.WithLabelValues("get")
	m.BackendStatus.WithLabelValues("2xx")
	m.Lockouts.WithLabelValues("access_key")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 12 {
		t.Errorf("only %d metric families gathered", len(mfs))
	}
	for _, mf := range mfs {
		if !strings.Contains(string(readme), "`"+mf.GetName()+"`") {
			t.Errorf("README does not document %s", mf.GetName())
		}
	}
}
