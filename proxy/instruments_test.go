package proxy

import (
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
