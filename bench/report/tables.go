package main

import (
	"cmp"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/ec2proxy/ec2proxy/configs"
)

// Labels bench/run.sh gives its loadgen passes.
const (
	lBackend     = "backend"
	lNginx       = "nginx"
	lNginxID     = "nginx-identity"
	lFastproxy   = "fastproxy"
	lLoop        = "loopproxy"
	lLoopVerify  = "loopverify"
	lProxy       = "ec2proxy"
	lProxyGo     = "ec2proxy-goroutines"
	lProxyPlain  = "ec2proxy-loop-plain"
	lProtections = "ec2proxy-protections"
	lFlood       = "ec2proxy-badsig"
	lFloodFresh  = "ec2proxy-badsig-distinct"
	lGoFlood     = "ec2proxy-goroutines-badsig"
	lGoFloodF    = "ec2proxy-goroutines-badsig-distinct"
	lFill        = "ec2proxy-fill"
	lRSSFill     = "rss-fill"
)

var loadRows = []struct{ label, name string }{
	{lBackend, "backend direct"},
	{lNginx, "nginx plain proxy"},
	{lNginxID, "nginx + ec2proxy's identity headers (reference)"},
	{lFastproxy, "plain fasthttp proxy (Go reference)"},
	{lLoop, "Go event-loop proxy (reference)"},
	{lLoopVerify, "Go event loop + ec2proxy's verification (estimate)"},
	{lProxy, "ec2proxy, warm (keystone + redis; defaults: event loop, io_uring)"},
	{lProxyPlain, "ec2proxy, warm, server.io_uring: false"},
	{lProxyGo, "ec2proxy, warm, server.event_loop: false (goroutine server)"},
	{lProtections, "ec2proxy, every protection on"},
	{lFlood, "ec2proxy, invalid signatures, repeated"},
	{lFloodFresh, "ec2proxy, invalid signatures, all distinct"},
	{lGoFlood, "goroutine server, invalid signatures, repeated"},
	{lGoFloodF, "goroutine server, invalid signatures, all distinct"},
}

func (r *run) write(w io.Writer) {
	f := r.facts
	if f["phases"] == "rss" {
		fmt.Fprintf(w, "# ec2proxy benchmark results: RSS only\n\n")
		fmt.Fprintf(w, "Run %s with `PHASES=rss bash bench/run.sh` (only the RSS measurement).\n\n", f["date"])
		fmt.Fprintf(w, "Machine: %s cores (%s), kernel %s, %s; redis %s. %s\n\n", f["nproc"], f["cpu_model"], f["kernel"], f["go_version"], f["redis_version"], f["pinning"])
		r.writeMemory(w)
		return
	}
	fmt.Fprintf(w, "# ec2proxy benchmark results\n\n")
	fmt.Fprintf(w, "Run %s with `make bench` (`bash bench/run.sh`).\n\n", f["date"])
	fmt.Fprintf(w, "Machine: %s cores (%s), kernel %s, %s; nginx %s, redis %s, keystone %s.\n\n",
		f["nproc"], f["cpu_model"], f["kernel"], f["go_version"], f["nginx_version"], f["redis_version"], f["keystone_version"])
	fmt.Fprintf(w, "Load: %s connections, %s warm-up then %s measured per pass (fasthttp, nginx, the Go event loops and warm ec2proxy: %s rounds in turn, median round shown; every protection on: as many passes, median shown), %s EC2 credentials (half SigV2 HmacSHA256, half SigV4, form POST DescribeInstances, signed at the start of each pass unless marked †). %s\n\n",
		f["conns"], f["warmup"], f["duration"], f["rounds"], f["keys"], f["pinning"])
	fmt.Fprintf(w, "Load average before the run: %s. Other work on the machine during the run adds noise; the CPU column shows how busy each core was.\n\n", f["loadavg"])

	r.writeLoad(w)
	r.writeEqualLoad(w)
	r.writeRounds(w)
	r.writePerf(w)
	r.writeKinds(w)
	r.writeDeps(w)
	r.writeTargets(w)
	if p := r.text("protections.yaml"); p != "" {
		fmt.Fprintf(w, "## \"Every protection on\"\n\nThe ec2proxy configuration of that row adds:\n\n```yaml\n%s\n```\n\n", p)
		if extra := f["auth_options"]; extra != "" {
			fmt.Fprintf(w, "Signature and protection settings in configs/config.go at run time: %s.\n\n", extra)
		}
	}
	r.writeMicro(w)
	if p := r.text("profile-top.txt"); p != "" {
		fmt.Fprintf(w, "## CPU profile of ec2proxy under the warm load\n\n```\n%s\n```\n\n", p)
	}
}

func (r *run) writeLoad(w io.Writer) {
	nginx, haveNginx := r.results[lNginx]
	fmt.Fprintf(w, "## Throughput and latency\n\n")
	fmt.Fprintf(w, "| target | req/s | p50 ms | p99 ms | p99.9 ms | req/s ÷ nginx | p99 − nginx p99 | answers | proxy / backend CPU µs per request | proxy / backend CPU %% | cores busy %% | loadgen CPU %% |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|\n")
	for _, row := range loadRows {
		res, ok := r.results[row.label]
		if !ok {
			fmt.Fprintf(w, "| %s | – | – | – | – | – | – | not run | | | | |\n", row.name)
			continue
		}
		ratio, delta := "–", "–"
		if haveNginx && nginx.RPS > 0 {
			ratio = fmt.Sprintf("%.2f", res.RPS/nginx.RPS)
			delta = fmt.Sprintf("%+.2f ms", res.P99Ms-nginx.P99Ms)
		}
		name := row.name
		if res.Fresh {
			name += " †"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %.0f |\n",
			name, res.RPS, res.P50Ms, res.P99Ms, res.P999Ms, ratio, delta, answers(res),
			pair(res.CPUPerRequestUs, "%.1f"), pair(res.CPUPct, "%.0f"), cpus(res.CPUBusy), res.LoadgenCPU)
	}
	fmt.Fprintf(w, "\n† built by the load generator just before each request, with a unique ClientToken (replay protection refuses repeats): every protection on signs each one; the floods of distinct invalid signatures give each a made-up signature of its own instead (distinct bad signatures are what lockout counts; an attacker need not compute HMACs, and signing them kept the generator's core busier than the proxy's). The other rows reuse requests signed when the pass starts.\n\nCPU per request is the process's user+system time during the measured window (/proc/PID/stat, 10 ms ticks) over the requests answered. It varies less than req/s with what else the machine does, but not nothing: another process on the same core, or a busy host (this guest reports no steal time), inflates it too. The proxy's share of its core plus the backend's, well under 100%% while the core is busy, means other processes took the rest.\n\n")
}

// Labels of the equal-load passes: the target's label and this suffix.
const atRate = "@rate"

// writeEqualLoad shows the open-loop passes: every proxy at the same
// request rate, latency counted from each request's scheduled time.
func (r *run) writeEqualLoad(w io.Writer) {
	nginx, haveNginx := r.results[lNginx+atRate]
	if !haveNginx {
		return
	}
	fmt.Fprintf(w, "### Latency at equal load (%s req/s, open loop, %s rounds in turn)\n\n", r.facts["lat_rate"], cmp.Or(r.facts["lat_rounds"], r.facts["rounds"]))
	fmt.Fprintf(w, "| target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99 − nginx p99 | answers | proxy / backend CPU µs per request |\n|---|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, row := range []struct{ label, name string }{{lNginx, "nginx plain proxy"}, {lFastproxy, "plain fasthttp proxy (Go reference)"}, {lLoopVerify, "Go event loop + verification (estimate)"}, {lProxy, "ec2proxy, warm"}, {lProxyGo, "ec2proxy, warm, goroutine server"}} {
		res, ok := r.results[row.label+atRate]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %+.2f ms | %s | %s |\n", row.name, res.RPS, res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms,
			res.P99Ms-nginx.P99Ms, answers(res), pair(res.CPUPerRequestUs, "%.1f"))
	}
	if rounds := r.rounds[lProxy+atRate]; len(rounds) > 1 {
		fmt.Fprintf(w, "\nEach target's median round by p99 is shown; every round (p99 ms: nginx / fasthttp / ec2proxy, and ec2proxy − nginx in the same round):")
		for i := range rounds {
			n, f, p := r.roundOf(lNginx+atRate, i), r.roundOf(lFastproxy+atRate, i), r.roundOf(lProxy+atRate, i)
			fmt.Fprintf(w, " %d: %.2f / %.2f / %.2f (%+.2f);", i+1, n.P99Ms, f.P99Ms, p.P99Ms, p.P99Ms-n.P99Ms)
		}
		fmt.Fprintf(w, "\n")
	}
	fmt.Fprintf(w, "\nThe generator sends on a fixed schedule whatever the answers take (a request due while the previous answer on its connection is late counts from its due time), at a rate every target sustains: p99 is then the time a request spends in the proxy and backend, not queueing behind a saturated core (the saturated p99 above follows from each target's throughput).\n\n")
}

// roundOf is round i (from 0) of label, or a zero result.
func (r *run) roundOf(label string, i int) result {
	if list := r.rounds[label]; i < len(list) {
		return list[i]
	}
	return result{}
}

// equalLoadDelta is ec2proxy's p99 minus nginx's at equal load: the median
// of the rounds' differences (each round's pair ran back to back), or the
// single pass's.
func (r *run) equalLoadDelta() (float64, bool) {
	nr, pr := r.rounds[lNginx+atRate], r.rounds[lProxy+atRate]
	if len(nr) > 0 && len(nr) == len(pr) {
		d := make([]float64, len(nr))
		for i := range nr {
			d[i] = pr[i].P99Ms - nr[i].P99Ms
		}
		return median(d), true
	}
	p, okP := r.results[lProxy+atRate]
	n, okN := r.results[lNginx+atRate]
	return p.P99Ms - n.P99Ms, okP && okN
}

func answers(res result) string {
	var parts []string
	codes := make([]string, 0, len(res.Status))
	for c := range res.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s×%.0f", c, res.Status[c]))
	}
	if res.Errors > 0 {
		parts = append(parts, fmt.Sprintf("%.0f transport errors", res.Errors))
	}
	return strings.Join(parts, ", ")
}

// pair shows the proxy's and the backend's value, "–" where not measured.
func pair(m map[string]float64, format string) string {
	show := func(name string) string {
		if v, ok := m[name]; ok {
			return fmt.Sprintf(format, v)
		}
		return "–"
	}
	return show("proxy") + " / " + show("backend")
}

func cpus(b []float64) string {
	var parts []string
	for i, v := range b {
		parts = append(parts, fmt.Sprintf("cpu%d %.0f", i, v))
	}
	return strings.Join(parts, " / ")
}

// writeRounds lists every round of the targets measured in turn, with
// ec2proxy's ratio to nginx within the same round.
func (r *run) writeRounds(w io.Writer) {
	nginx := r.rounds[lNginx]
	if len(nginx) < 2 {
		return
	}
	columns := []struct{ label, name string }{{lFastproxy, "plain fasthttp proxy"}, {lNginx, "nginx"}, {lNginxID, "nginx + identity headers"},
		{lProxy, "ec2proxy warm"}, {lProxyPlain, "io_uring off"}, {lProxyGo, "goroutine server"}, {lLoop, "Go event loop"}, {lLoopVerify, "event loop + verification"}}
	ratios := []struct{ label, name string }{{lNginxID, "nginx + identity headers"}, {lProxy, "ec2proxy"}, {lProxyPlain, "io_uring off"}, {lProxyGo, "goroutine server"}, {lLoopVerify, "event loop + verification"}}
	fmt.Fprintf(w, "### Rounds (req/s; p99 ms)\n\n| round |")
	for _, c := range columns {
		fmt.Fprintf(w, " %s |", c.name)
	}
	for _, c := range ratios {
		fmt.Fprintf(w, " %s ÷ nginx |", c.name)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(columns)+len(ratios)))
	for i := range nginx {
		fmt.Fprintf(w, "| %d |", i+1)
		for _, c := range columns {
			list := r.rounds[c.label]
			if i >= len(list) || list[i].RPS == 0 {
				fmt.Fprintf(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %.0f; %.2f |", list[i].RPS, list[i].P99Ms)
		}
		for _, c := range ratios {
			list := r.rounds[c.label]
			if i >= len(list) || nginx[i].RPS == 0 || list[i].RPS == 0 {
				fmt.Fprintf(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %.2f |", list[i].RPS/nginx[i].RPS)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

func (r *run) writeKinds(w io.Writer) {
	fmt.Fprintf(w, "### By signature version\n\n| target | SigV2 req/s | SigV2 p50 / p99 ms | SigV4 req/s | SigV4 p50 / p99 ms |\n|---|---:|---:|---:|---:|\n")
	for _, row := range loadRows {
		res, ok := r.results[row.label]
		if !ok {
			continue
		}
		v2, v4 := res.Kinds["sigv2"], res.Kinds["sigv4"]
		fmt.Fprintf(w, "| %s | %.0f | %.2f / %.2f | %.0f | %.2f / %.2f |\n", row.name, v2.RPS, v2.P50Ms, v2.P99Ms, v4.RPS, v4.P50Ms, v4.P99Ms)
	}
	fmt.Fprintf(w, "\nBoth kinds share the connections, so each gets about half of the total; the latencies are what differs.\n\n")
}

func per10k(n, requests float64) string {
	if requests == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", n*10000/requests)
}

func commands(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%s×%.0f", strings.ToUpper(c), n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (r *run) writeDeps(w io.Writer) {
	fmt.Fprintf(w, "## Keystone and Redis load\n\n")
	fmt.Fprintf(w, "| pass | requests | Keystone ec2tokens calls | per 10,000 requests | Redis commands | per 10,000 requests | Redis commands by name |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, label := range []string{"ec2proxy-protections-fill", lProtections, lFill, lProxy, lFlood, lFloodFresh} {
		res, ok := r.results[label]
		if !ok {
			continue
		}
		requests := fmt.Sprintf("%.0f", res.Requests)
		if res.Retried > 0 {
			requests += fmt.Sprintf(" (%.0f retried after a 5xx)", res.Retried)
		}
		fmt.Fprintf(w, "| %s (%s) | %s | %.0f | %s | %.0f | %s | %s |\n", label, res.Mode, requests,
			res.KeystoneEC2Tokens, per10k(res.KeystoneEC2Tokens, res.Requests),
			res.RedisCommands, per10k(res.RedisCommands, res.Requests), commands(res.RedisByCommand))
	}
	fmt.Fprintf(w, "\n\"fill\" passes send one request per access key to a freshly started ec2proxy (cold caches); the timed passes follow on the same process. Redis commands are INFO commandstats deltas (the probe's own INFO excluded); Keystone calls are ec2proxy's `ec2proxy_keystone_requests_total{op=\"ec2tokens\"}`.\n\n")
	if f := r.fleetEC2Tokens(); f.processes > 0 {
		fmt.Fprintf(w, "Over the run, the %d ec2proxy processes sharing Redis (with keystone.share_tokens, the default: %s; the warm one lived %s s) made %.0f ec2tokens calls (%.0f answered with a token, the others failed, e.g. timed out on a cold Keystone, and were retried) for %d access keys, i.e. %.2f successful calls per key (Keystone token lifetime: %s, renewed %s before expiry). The first process started obtains the tokens; the others take them from Redis.\n\n",
			f.processes, strings.Join(f.names, ", "), r.facts["warm_lifetime_s"], f.total, f.ok, f.keys, f.ok/float64(max(f.keys, 1)), r.facts["token_lifetime"], r.facts["token_margin"])
	}
	r.writeMemory(w)
}

// fleetTokens is what the ec2proxy processes of a run, sharing one Redis,
// asked of Keystone's ec2tokens over their lives.
type fleetTokens struct {
	ok, total float64
	keys      int
	processes int
	names     []string // the processes, by their main pass's label
	unread    []string // processes none of whose passes read their metrics
}

// ec2proxyProcesses maps each pass label (rounds without their "#n") to
// the process that served it: the counters a pass reports are that
// process's since it started.
var ec2proxyProcesses = map[string]string{
	"ec2proxy-protections-fill": lProtections, lProtections: lProtections,
	lFill: lProxy, lProxy: lProxy, lFlood: lProxy, lFloodFresh: lProxy,
	lProxyGo + "-fill": lProxyGo, lProxyGo: lProxyGo, lGoFlood: lProxyGo, lGoFloodF: lProxyGo,
	lProxyPlain + "-fill": lProxyPlain, lProxyPlain: lProxyPlain,
}

func (r *run) fleetEC2Tokens() fleetTokens {
	type lifetime struct {
		ok, total float64
		read      bool // a pass read its metrics
	}
	byProcess := map[string]lifetime{}
	var f fleetTokens
	for label, res := range r.results {
		base, _, _ := strings.Cut(label, "#")
		process, ok := ec2proxyProcesses[base]
		if !ok {
			continue
		}
		l := byProcess[process]
		l.ok, l.total = max(l.ok, res.KeystoneEC2TokensOK), max(l.total, res.KeystoneEC2TokensTotal)
		l.read = l.read || res.ProxyRequests > 0
		byProcess[process] = l
		f.keys = max(f.keys, res.Keys)
	}
	for process, l := range byProcess {
		f.ok += l.ok
		f.total += l.total
		f.names = append(f.names, process)
		if !l.read {
			f.unread = append(f.unread, process)
		}
	}
	sort.Strings(f.names)
	sort.Strings(f.unread)
	f.processes = len(byProcess)
	return f
}

func (r *run) writeMemory(w io.Writer) {
	if kib := r.facts["rss_kib"]; kib != "" {
		fmt.Fprintf(w, "## Memory\n\n%s\n\n", r.rssText())
		if h := r.text("heap-top.txt"); h != "" {
			what := "in use"
			if r.facts["rss_live_heap_kib"] != "" {
				what = "in use after a forced GC"
			}
			fmt.Fprintf(w, "<details><summary>heap profile (%s) with %s credentials</summary>\n\n```\n%s\n```\n</details>\n\n", what, r.facts["rss_keys"], h)
		}
	}
}

func (r *run) rssText() string {
	f := r.facts
	limit := fmt.Sprintf("ec2proxy's default GC target, server.gc_percent: %d; no GOMEMLIMIT", configs.Default().Server.GCPercent)
	if g := f["rss_gc_percent"]; g != "" {
		limit = "server.gc_percent: " + g + " (not the default); no GOMEMLIMIT"
	}
	if l := f["rss_gomemlimit"]; l != "" {
		limit = strings.Replace(limit, "no GOMEMLIMIT", "GOMEMLIMIT="+l+" (not the default)", 1)
	}
	text := fmt.Sprintf("ec2proxy RSS with %s credentials cached: **%s MiB** (VmRSS; peak VmHWM %s MiB; Go heap in use %s MiB, next GC at %s MiB; %s); cache entries: %s credentials, %s tokens. ",
		f["rss_keys"], mib(f["rss_kib"]), mib(f["rss_hwm_kib"]), mib(f["rss_heap_inuse_kib"]), mib(f["rss_next_gc_kib"]), limit, f["rss_cached_credentials"], f["rss_cached_tokens"])
	if live, err := strconv.ParseFloat(f["rss_live_heap_kib"], 64); err == nil {
		perKey := ""
		if n, err := strconv.ParseFloat(f["rss_keys"], 64); err == nil && n > 0 {
			perKey = fmt.Sprintf(", %.0f bytes per access key", live*1024/n)
		}
		text += fmt.Sprintf("Live heap after a forced GC: %s MiB%s (RSS then %s MiB). ", mib(f["rss_live_heap_kib"]), perKey, mib(f["rss_after_gc_kib"]))
	}
	text += fmt.Sprintf("Method: %s random credentials written to Redis, ec2proxy in keystone mode against bench/fakekeystone (answers every ec2tokens call with a token shaped like Keystone 22's, so the token cache fills too), "+
		"one signed request per key (%s req/s during the fill), then /proc/PID/status. The process is bench/profproxy (ec2proxy wired by internal/app, plus a pprof listener) so that the heap profile below comes from the same process.",
		f["rss_keys"], r.rpsOf(lRSSFill))
	if f["warm_rss_kib"] != "" {
		text += fmt.Sprintf(" For comparison, the warm benchmark process (%s keys) had %s MiB.", f["keys"], mib(f["warm_rss_kib"]))
	}
	return text
}

func (r *run) rpsOf(label string) string {
	if res, ok := r.results[label]; ok {
		return fmt.Sprintf("%.0f", res.RPS)
	}
	return "–"
}

func mib(kib string) string {
	var k float64
	if _, err := fmt.Sscan(kib, &k); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f", k/1024)
}
