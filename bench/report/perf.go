package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// perfCounts reads a `perf stat -x,` file: event -> value.
func perfCounts(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[f[2]] = v
		}
	}
	return out
}

// writePerf shows system calls, context switches and CPU time per request
// of each proxy process, from perf stat over perf_window_s seconds of a pass
// run for it alone (requests in the window estimated from that pass's
// req/s).
func (r *run) writePerf(w io.Writer) {
	window, err := strconv.ParseFloat(r.facts["perf_window_s"], 64)
	if err != nil {
		return
	}
	var rows []string
	for _, row := range loadRows {
		counts := perfCounts(r.text("perf-" + row.label + ".txt"))
		res, ok := r.results[row.label+"@perf"] // a pass of its own
		if !ok {                                // runs before perf had its own passes: the first round
			if res, ok = r.results[row.label+"#1"]; !ok {
				res, ok = r.results[row.label]
			}
		}
		if len(counts) == 0 || !ok || res.RPS == 0 {
			continue
		}
		n := res.RPS * window
		rows = append(rows, fmt.Sprintf("| %s | %.2f | %.3f | %.1f |", row.name,
			counts["raw_syscalls:sys_enter"]/n, counts["context-switches"]/n, counts["task-clock"]*1000/n))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "### Per request, inside the proxy process (perf stat, %.0f s of a pass of its own: the tracing slows the process, so the passes above run without it)\n\n", window)
	fmt.Fprintf(w, "| target | system calls | context switches | CPU µs (task-clock) |\n|---|---:|---:|---:|\n%s\n\n", strings.Join(rows, "\n"))
}
