package app

import (
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2proxy/ec2proxy/configs"
)

func TestTuneRuntime(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		name      string
		gcPercent int
		gogc      string
		want      int // the GC percent in effect after
		logged    bool
	}{
		{"the default", configs.Default().Server.GCPercent, "", 50, false},
		{"0 leaves Go's", 0, "", 100, false},
		{"over GOGC, said at start", 70, "200", 70, true},
		{"0 with GOGC", 0, "200", 100, false}, // the runtime read GOGC at start; this test's process was started without it
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			debug.SetGCPercent(100)
			core, logs := observer.New(zap.InfoLevel)
			TuneRuntime(configs.Server{GCPercent: tc.gcPercent}, zap.New(core))
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d; want %d", got, tc.want)
			}
			if logged := logs.FilterMessageSnippet("overrides the GOGC").Len() == 1; logged != tc.logged {
				t.Errorf("logged the GOGC override: %v; want %v", logged, tc.logged)
			}
		})
	}
}
