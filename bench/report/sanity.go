package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// equalLoadLabels are the targets of the equal-load passes (LAT_RATE > 0).
var equalLoadLabels = []string{lNginx, lFastproxy, lLoopVerify, lProxy, lProxyGo}

// problems lists what makes a run wrong whatever the machine's speed: a
// pass missing or answered with an unexpected status or a transport error,
// a phase asked for that left no result, or a target that counts calls
// rather than time missed (Keystone calls during the floods, ec2tokens
// calls per key, Redis commands on the warm path). Speed targets are not
// judged: the test suite's check run has one-second passes on a shared
// machine. bench/run.sh CHECK=1 fails on any problem.
func (r *run) problems() []string {
	var out []string
	var want []string
	for _, row := range loadRows {
		want = append(want, row.label)
	}
	want = append(want, lFill)
	if n, _ := strconv.Atoi(r.facts["lat_rate"]); n > 0 {
		for _, l := range equalLoadLabels {
			want = append(want, l+atRate)
		}
	}
	for _, l := range want {
		if _, ok := r.results[l]; !ok {
			out = append(out, "no result for the pass "+l)
		}
	}
	labels := make([]string, 0, len(r.results))
	for l := range r.results {
		if len(r.rounds[l]) == 0 { // a round's median is listed as its round
			labels = append(labels, l)
		}
	}
	slices.Sort(labels)
	for _, l := range labels {
		res := r.results[l]
		switch {
		case res.Requests <= 0:
			out = append(out, l+": no request answered")
		case res.Unexpected > 0 || res.Errors > 0:
			out = append(out, fmt.Sprintf("%s: %.0f unexpected answers (want %s; %s), %.0f transport errors", l, res.Unexpected, res.Expect, answers(res), res.Errors))
		}
	}
	if n, _ := strconv.Atoi(r.facts["rss_keys"]); n > 0 && r.facts["rss_kib"] == "" {
		out = append(out, "RSS_KEYS="+r.facts["rss_keys"]+" but no RSS measured")
	}
	for _, c := range r.checks() {
		if c.exact && (!c.known || !c.met) {
			out = append(out, "target "+yes(c)+": "+c.target+": "+c.measured)
		}
		if n, _ := strconv.Atoi(r.facts["micro_count"]); n > 0 && !c.known && strings.Contains(c.target, "1.5×") {
			out = append(out, "micro-benchmark missing: "+c.target)
		}
	}
	return out
}
