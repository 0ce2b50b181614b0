package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

const sampleMicro = `goos: linux
pkg: github.com/ec2proxy/ec2proxy/sigv2
BenchmarkVerifyPublished-2       	  490872	      1232 ns/op	 194.03 MB/s	       0 B/op	       0 allocs/op
BenchmarkRawHMACSHA256PreKeyed 	 1870269	       315.0 ns/op	 758.66 MB/s	       0 B/op	       0 allocs/op
PASS
pkg: github.com/ec2proxy/ec2proxy/sigv2
BenchmarkVerifyPublished-2       	  473640	      1300 ns/op	 191.62 MB/s	       0 B/op	       0 allocs/op
BenchmarkRawHMACSHA256PreKeyed 	 1541824	       413.6 ns/op	 577.83 MB/s	       0 B/op	       0 allocs/op
pkg: github.com/ec2proxy/ec2proxy/sigv4
BenchmarkVerifyPostForm 	  476868	      1277 ns/op	       8 B/op	       1 allocs/op
`

func TestParseMicro(t *testing.T) {
	list := parseMicro(sampleMicro)
	if len(list) != 3 {
		t.Fatalf("parseMicro found %d benchmarks; want 3 (rounds merged, packages kept apart)", len(list))
	}
	v := find(list, "sigv2", "VerifyPublished")
	if v == nil || len(v.ns) != 2 || median(v.ns) != 1300 {
		t.Errorf("sigv2 VerifyPublished = %+v; want two samples, median 1300", v)
	}
	if f := find(list, "sigv4", "VerifyPostForm"); f == nil || median(f.allocs) != 1 || median(f.bytes) != 8 {
		t.Errorf("sigv4 VerifyPostForm = %+v; want 8 B/op, 1 alloc", f)
	}
}

func TestPerfCounts(t *testing.T) {
	got := perfCounts("# started on x\n\n311300,,raw_syscalls:sys_enter,4000,100.00,,\n27859,,context-switches,4000,100.00,6.9,/sec\n2900.5,msec,task-clock,4000,100.00,0.7,CPUs utilized\n")
	want := map[string]float64{"raw_syscalls:sys_enter": 311300, "context-switches": 27859, "task-clock": 2900.5}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("perfCounts[%q] = %v; want %v", k, got[k], v)
		}
	}
}

func TestMedianRounds(t *testing.T) {
	results := map[string]result{
		"nginx#1": {Label: "nginx#1", RPS: 30}, "nginx#2": {Label: "nginx#2", RPS: 10}, "nginx#3": {Label: "nginx#3", RPS: 20},
		"backend": {Label: "backend", RPS: 99},
	}
	rounds := medianRounds(results)
	if got := results["nginx"].Label; got != "nginx#3" {
		t.Errorf("median round of nginx = %s; want nginx#3 (20 req/s)", got)
	}
	if len(rounds["nginx"]) != 3 || rounds["nginx"][1].RPS != 10 {
		t.Errorf("rounds[nginx] = %+v; want the three rounds in order", rounds["nginx"])
	}
	if results["backend"].RPS != 99 || len(rounds["backend"]) != 0 {
		t.Error("a target without rounds changed")
	}
}

func TestBaselines(t *testing.T) {
	for _, tc := range []struct {
		b    bench
		want string
	}{
		{bench{pkg: "sigv2", name: "Vectors/v1/parse+verify"}, "Vectors/v1/raw-hmac"},
		{bench{pkg: "sigv2", name: "Vectors/v1/verify"}, "Vectors/v1/raw-hmac"},
		{bench{pkg: "sigv2", name: "VerifyMismatch"}, ""},
		{bench{pkg: "sigv4", name: "VerifyPostForm"}, "RawHMACSHA256,RawSigV4Hashes"},
		{bench{pkg: "sigv4", name: "Vectors/v1/verify"}, "Vectors/v1/raw-hmac,Vectors/v1/protocol-hashes"},
		{bench{pkg: "sigv4", name: "Vectors/v1/raw-hmac"}, "Vectors/v1/raw-hmac,Vectors/v1/protocol-hashes"},
	} {
		if got := strings.Join(baselines(&tc.b), ","); got != tc.want {
			t.Errorf("baselines(%s %s) = %q; want %q", tc.b.pkg, tc.b.name, got, tc.want)
		}
	}
}

func TestEqualLoad(t *testing.T) {
	r := &run{facts: map[string]string{"lat_rate": "6000"}, results: map[string]result{
		"nginx@rate":    {Label: "nginx@rate", RPS: 6000, P99Ms: 1.2},
		"ec2proxy@rate": {Label: "ec2proxy@rate", RPS: 6000, P99Ms: 1.5},
	}}
	var b strings.Builder
	r.writeEqualLoad(&b)
	if !strings.Contains(b.String(), "| ec2proxy, warm | 6000 |") || !strings.Contains(b.String(), "+0.30 ms") {
		t.Errorf("equal-load table:\n%s", b.String())
	}
	var found bool
	for _, c := range r.checks() {
		if strings.Contains(c.target, "at equal load") {
			found = true
			if !c.met || !c.known {
				t.Errorf("p99 +0.3 ms at equal load: check %+v; want met", c)
			}
		}
	}
	if !found {
		t.Error("no equal-load p99 check")
	}
}

// Equal-load rounds: each target's median round is the one with the median
// p99 (their req/s are all the schedule's), and the target compares
// ec2proxy with nginx round by round.
func TestEqualLoadRounds(t *testing.T) {
	results := map[string]result{}
	for i, p99 := range []struct{ nginx, proxy float64 }{{0.8, 1.0}, {3.0, 2.4}, {0.9, 1.6}} {
		n := fmt.Sprint("#", i+1)
		results["nginx@rate"+n] = result{Label: "nginx@rate" + n, RPS: 3000, P99Ms: p99.nginx}
		results["ec2proxy@rate"+n] = result{Label: "ec2proxy@rate" + n, RPS: 3000, P99Ms: p99.proxy}
	}
	r := &run{facts: map[string]string{"lat_rate": "3000"}, results: results, rounds: medianRounds(results)}
	if got := r.results["nginx@rate"].P99Ms; got != 0.9 {
		t.Errorf("nginx's median round has p99 %v; want 0.9", got)
	}
	if got := r.results["ec2proxy@rate"].P99Ms; got != 1.6 {
		t.Errorf("ec2proxy's median round has p99 %v; want 1.6", got)
	}
	// Differences per round: +0.2, -0.6, +0.7: median +0.2 (met), where the
	// median rounds alone would say +0.7.
	d, ok := r.equalLoadDelta()
	if !ok || math.Abs(d-0.2) > 1e-9 {
		t.Errorf("equalLoadDelta = %v, %v; want +0.2", d, ok)
	}
	var b strings.Builder
	r.writeEqualLoad(&b)
	if !strings.Contains(b.String(), "2: 3.00 / 0.00 / 2.40 (-0.60)") {
		t.Errorf("equal-load rounds not listed:\n%s", b.String())
	}
}

func TestTrimProcs(t *testing.T) {
	for give, want := range map[string]string{
		"BenchmarkVerifyPostForm-2":                            "BenchmarkVerifyPostForm",
		"BenchmarkVerifyPostForm":                              "BenchmarkVerifyPostForm",
		"BenchmarkVectors/boto2-get-sha256-filters/raw-hmac":   "BenchmarkVectors/boto2-get-sha256-filters/raw-hmac",
		"BenchmarkVectors/boto2-get-sha256-filters/raw-hmac-2": "BenchmarkVectors/boto2-get-sha256-filters/raw-hmac",
		"BenchmarkX-": "BenchmarkX-",
	} {
		if got := trimProcs(give); got != want {
			t.Errorf("trimProcs(%q) = %q; want %q", give, got, want)
		}
	}
}

// A slow round slows a benchmark and its baseline alike: the ratio is taken
// per round, not between medians from different rounds.
func TestRatioPerRound(t *testing.T) {
	a := &bench{ns: []float64{100, 200, 110}}
	b := &bench{ns: []float64{50, 100, 100}}
	if got := ratio(a, b); got != 2 {
		t.Errorf("ratio = %v; want 2 (rounds 2, 2, 1.1)", got)
	}
	if got := ratio(a, &bench{ns: []float64{55}}); got != 2 {
		t.Errorf("ratio with unequal rounds = %v; want median/median = 2", got)
	}
}

// The rounds table gives the event loop with verification its own ratio to
// nginx of the same round, and shows "–" where a round lacks a target (a
// run from before the event loops were measured).
func TestRoundsWithEventLoops(t *testing.T) {
	results := map[string]result{}
	for i, rps := range []struct{ nginx, nginxID, proxy, loop, verify float64 }{{20000, 18000, 14000, 22000, 19000}, {25000, 0, 16000, 0, 0}} {
		n := fmt.Sprint("#", i+1)
		add := func(label string, v float64) {
			if v > 0 {
				results[label+n] = result{Label: label + n, RPS: v, P99Ms: 5}
			}
		}
		add("nginx", rps.nginx)
		add("nginx-identity", rps.nginxID)
		add("ec2proxy", rps.proxy)
		add("loopproxy", rps.loop)
		add("loopverify", rps.verify)
	}
	r := &run{results: results, rounds: medianRounds(results)}
	var b strings.Builder
	r.writeRounds(&b)
	for _, want := range []string{
		"| 1 | – | 20000; 5.00 | 18000; 5.00 | 14000; 5.00 | – | – | 22000; 5.00 | 19000; 5.00 | 0.90 | 0.70 | – | – | 0.95 |",
		"| 2 | – | 25000; 5.00 | – | 16000; 5.00 | – | – | – | – | – | 0.64 | – | – | – |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("rounds table lacks %q:\n%s", want, b.String())
		}
	}
}

// The warm process takes its tokens from the shared store: its own count
// (0) met the Keystone target without showing anything. The fleet's is
// judged: the process that obtained the tokens counts, and a run in which
// no process obtained any does not meet it.
func TestFleetEC2Tokens(t *testing.T) {
	results := map[string]result{
		"ec2proxy-protections-fill": {Keys: 200, KeystoneEC2TokensOK: 200, KeystoneEC2TokensTotal: 201, ProxyRequests: 200},
		"ec2proxy-protections#1":    {Keys: 200, KeystoneEC2TokensOK: 200, KeystoneEC2TokensTotal: 201, ProxyRequests: 9000},
		"ec2proxy-fill":             {Keys: 200, ProxyRequests: 200},
		"ec2proxy#1":                {Keys: 200}, // its metrics unread: another pass read them
		"ec2proxy-badsig":           {Keys: 200, ProxyRequests: 9000},
		"ec2proxy-goroutines#2":     {Keys: 200, KeystoneEC2TokensTotal: 1, ProxyRequests: 9000}, // one failed and retried
		"nginx#1":                   {Keys: 200, KeystoneEC2TokensOK: 999},
	}
	r := &run{results: results, facts: map[string]string{}}
	f := r.fleetEC2Tokens()
	if f.ok != 200 || f.total != 202 || f.keys != 200 || f.processes != 3 {
		t.Errorf("fleetEC2Tokens = %+v; want 200 ok, 202 in all, 200 keys, 3 processes", f)
	}
	if c := keystoneCheck(r); !c.met || !c.known {
		t.Errorf("%+v: want met", c)
	}
	// A process whose metrics no pass read may have made calls unseen.
	unread := results["ec2proxy-goroutines#2"]
	unread.ProxyRequests = 0
	results["ec2proxy-goroutines#2"] = unread
	if c := keystoneCheck(r); c.known || !strings.Contains(c.measured, "ec2proxy-goroutines") {
		t.Errorf("%+v: want not measured, naming the unread process", c)
	}
	unread.ProxyRequests = 9000
	results["ec2proxy-goroutines#2"] = unread
	for _, label := range []string{"ec2proxy-protections-fill", "ec2proxy-protections#1", "ec2proxy-goroutines#2"} {
		res := results[label]
		res.KeystoneEC2TokensOK, res.KeystoneEC2TokensTotal = 0, 0
		results[label] = res
	}
	if c := keystoneCheck(r); c.met || !c.known {
		t.Errorf("%+v: a run with no ec2tokens call at all met the target", c)
	}
}

func keystoneCheck(r *run) check {
	for _, c := range r.checks() {
		if strings.HasPrefix(c.target, "≤ 1 ec2tokens call") {
			return c
		}
	}
	return check{}
}

// A flood's "zero Keystone calls" is judged only if ec2proxy's metrics
// were read during it: unread, every count is 0 and proved nothing.
func TestZeroKeystoneCallsNeedsTheMetrics(t *testing.T) {
	if c := zeroKeystoneCalls("flood", result{}); c.known || c.met {
		t.Errorf("%+v: judged without ec2proxy's metrics", c)
	}
	if c := zeroKeystoneCalls("flood", result{ProxyRequests: 1000}); !c.known || !c.met {
		t.Errorf("%+v: want met", c)
	}
	if c := zeroKeystoneCalls("flood", result{ProxyRequests: 1000, KeystoneEC2Tokens: 1}); !c.known || c.met {
		t.Errorf("%+v: want missed", c)
	}
}

// wholeRun is a run whose every load pass answered as expected, two
// rounds each where the harness runs rounds, with the call counts of a
// good run.
func wholeRun() map[string]result {
	results := map[string]result{}
	ok := func(label string, extra result) {
		extra.Label, extra.Keys, extra.Requests, extra.RPS = label, 20, 1000, 1000
		if extra.Status == nil {
			extra.Status = map[string]float64{"200": 1000}
		}
		results[label] = extra
	}
	for _, row := range loadRows {
		switch row.label {
		case lBackend:
			ok(row.label, result{})
		case lFlood, lFloodFresh, lGoFlood, lGoFloodF:
			ok(row.label, result{ProxyRequests: 1000, Status: map[string]float64{"403": 1000}})
		default:
			for i := 1; i <= 2; i++ {
				ok(fmt.Sprint(row.label, "#", i), result{ProxyRequests: 1000})
			}
		}
	}
	ok(lFill, result{ProxyRequests: 20, KeystoneEC2TokensOK: 20, KeystoneEC2TokensTotal: 20})
	return results
}

// The test suite's check run fails on what does not depend on speed.
func TestProblems(t *testing.T) {
	facts := map[string]string{"lat_rate": "0", "rss_keys": "0", "micro_count": "0", "cache_ttl": "60s"}
	check := func(results map[string]result) []string {
		r := &run{results: results, rounds: medianRounds(results), facts: facts}
		return r.problems()
	}
	if p := check(wholeRun()); len(p) != 0 {
		t.Fatalf("a whole run: problems %q; want none", p)
	}
	for _, tc := range []struct {
		name   string
		change func(map[string]result)
		want   string
	}{
		{"a pass missing", func(m map[string]result) { delete(m, lNginx+"#1"); delete(m, lNginx+"#2") }, "no result for the pass nginx"},
		{"an unexpected answer", func(m map[string]result) {
			r := m[lProxy+"#2"]
			r.Unexpected, r.Status = 3, map[string]float64{"200": 997, "502": 3}
			m[lProxy+"#2"] = r
		}, "ec2proxy#2: 3 unexpected answers"},
		{"transport errors", func(m map[string]result) { r := m[lFlood]; r.Errors = 1; m[lFlood] = r }, "1 transport errors"},
		{"nothing answered", func(m map[string]result) { r := m[lBackend]; r.Requests = 0; m[lBackend] = r }, "backend: no request answered"},
		{"Keystone called in a flood", func(m map[string]result) { r := m[lFloodFresh]; r.KeystoneEC2Tokens = 2; m[lFloodFresh] = r }, "zero Keystone calls"},
		// Unread metrics count 0 calls, which proves nothing.
		{"a flood's metrics not read", func(m map[string]result) { r := m[lFlood]; r.ProxyRequests = 0; m[lFlood] = r }, "not measured: ec2proxy-badsig: zero Keystone calls"},
		{"Redis on the warm path", func(m map[string]result) {
			for _, l := range []string{lProxy + "#1", lProxy + "#2"} {
				r := m[l]
				r.Seconds, r.RedisCommands, r.RedisByCommand = 1, 1000, map[string]float64{"HGETALL": 1000}
				m[l] = r
			}
		}, "Redis on the warm path"},
		{"more ec2tokens calls than keys", func(m map[string]result) { r := m[lFill]; r.KeystoneEC2TokensOK = 21; m[lFill] = r }, "ec2tokens call per access key"},
	} {
		results := wholeRun()
		tc.change(results)
		if p := check(results); !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: problems %q; want one with %q", tc.name, p, tc.want)
		}
	}
	// Phases asked for must leave their results.
	facts["lat_rate"], facts["rss_keys"], facts["micro_count"] = "1000", "2000", "1"
	got := strings.Join(check(wholeRun()), "\n")
	for _, want := range []string{"no result for the pass ec2proxy@rate", "RSS_KEYS=2000 but no RSS measured", "micro-benchmark missing: sigv2"} {
		if !strings.Contains(got, want) {
			t.Errorf("phases left no result: problems %q; want one with %q", got, want)
		}
	}
}
