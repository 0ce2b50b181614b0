package app

import (
	"os"
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
)

// TuneRuntime applies server.memory_limit_mib and server.gc_percent to the
// Go runtime, before the proxy is built. Most of the heap is the credential
// and token caches and the warm path allocates nothing: GC work follows
// cold traffic only, so a lower GC target than Go's 100 costs little and
// keeps the cold fill's peak RSS down (docs/performance.md, memory).
func TuneRuntime(s configs.Server, log *zap.Logger) {
	if s.MemoryLimitMiB > 0 {
		debug.SetMemoryLimit(int64(s.MemoryLimitMiB) << 20)
	}
	if s.GCPercent <= 0 {
		return
	}
	if env := os.Getenv("GOGC"); env != "" {
		log.Info("server.gc_percent overrides the GOGC environment variable; set server.gc_percent: 0 to use GOGC",
			zap.String("GOGC", env), zap.Int("gc_percent", s.GCPercent))
	}
	debug.SetGCPercent(s.GCPercent)
}
