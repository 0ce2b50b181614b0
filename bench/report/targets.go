package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

type check struct {
	target, measured string
	met              bool
	known            bool // false: not measured in this run
	exact            bool // counts calls, not time: the machine's speed does not decide it
}

// zeroKeystoneCalls judges a flood's Keystone calls, if ec2proxy's
// metrics were read during it (else its count of 0 proves nothing).
func zeroKeystoneCalls(label string, flood result) check {
	if flood.ProxyRequests <= 0 {
		return check{target: label + ": zero Keystone calls", measured: "ec2proxy's metrics not read", exact: true}
	}
	return check{label + ": zero Keystone calls", fmt.Sprintf("%.0f (ec2proxy counted %.0f requests)", flood.KeystoneEC2Tokens, flood.ProxyRequests), flood.KeystoneEC2Tokens == 0, true, true}
}

func yes(c check) string {
	switch {
	case !c.known:
		return "not measured"
	case c.met:
		return "met"
	}
	return "**missed**"
}

// checks evaluates the targets on this run's numbers.
func (r *run) checks() []check {
	var out []check
	proxy, okP := r.results[lProxy]
	nginx, okN := r.results[lNginx]
	if okP && okN {
		out = append(out,
			check{"ec2proxy warm ≥ 0.95× nginx req/s", fmt.Sprintf("%.2f×", proxy.RPS/nginx.RPS), proxy.RPS >= 0.95*nginx.RPS, true, false},
			check{"ec2proxy warm p99 within 0.5 ms of nginx's (both saturated)", fmt.Sprintf("%+.2f ms", proxy.P99Ms-nginx.P99Ms), proxy.P99Ms-nginx.P99Ms <= 0.5, true, false})
	}
	if goroutines, ok := r.results[lProxyGo]; ok && okN { // not the default: for reference
		out = append(out,
			check{"(not the default) server.event_loop: false ≥ 0.95× nginx req/s", fmt.Sprintf("%.2f×", goroutines.RPS/nginx.RPS), goroutines.RPS >= 0.95*nginx.RPS, true, false},
			check{"(not the default) server.event_loop: false, p99 within 0.5 ms of nginx's (both saturated)", fmt.Sprintf("%+.2f ms", goroutines.P99Ms-nginx.P99Ms), goroutines.P99Ms-nginx.P99Ms <= 0.5, true, false})
	}
	if d, ok := r.equalLoadDelta(); ok {
		p, n := r.results[lProxy+atRate], r.results[lNginx+atRate]
		what := fmt.Sprintf("%+.2f ms (median rounds: %.2f vs %.2f ms)", d, p.P99Ms, n.P99Ms)
		if len(r.rounds[lProxy+atRate]) > 1 {
			what = fmt.Sprintf("%+.2f ms, median of the rounds' differences (median rounds: %.2f vs %.2f ms)", d, p.P99Ms, n.P99Ms)
		}
		out = append(out, check{"ec2proxy warm p99 within 0.5 ms of nginx's at equal load (" + r.facts["lat_rate"] + " req/s)", what, d <= 0.5, true, false})
	}
	for _, label := range []string{lFlood, lFloodFresh} {
		flood, ok := r.results[label]
		if !ok {
			continue
		}
		if okP {
			out = append(out, check{label + ": ≥ the valid rate", fmt.Sprintf("%.0f vs %.0f req/s", flood.RPS, proxy.RPS), flood.RPS >= proxy.RPS, true, false})
		}
		out = append(out, zeroKeystoneCalls(label, flood))
	}
	if goroutines, ok := r.results[lProxyGo]; ok {
		for _, label := range []string{lGoFlood, lGoFloodF} {
			if flood, ok := r.results[label]; ok {
				out = append(out,
					check{label + ": ≥ the goroutine server's valid rate", fmt.Sprintf("%.0f vs %.0f req/s", flood.RPS, goroutines.RPS), flood.RPS >= goroutines.RPS, true, false},
					zeroKeystoneCalls(label, flood))
			}
		}
	}
	// Over the fleet: the warm process takes most tokens from the shared
	// store, filled by the process started before it, so its own count
	// alone (0) proved nothing.
	// A run under the token lifetime less the margin (55 minutes by
	// default) renews no token: one call per key in all.
	if f := r.fleetEC2Tokens(); f.processes > 0 {
		c := check{"≤ 1 ec2tokens call per access key per token lifetime",
			fmt.Sprintf("%.0f successful calls for %d keys over the %d ec2proxy processes sharing Redis (%s; %.0f failed and retried)", f.ok, f.keys, f.processes, strings.Join(f.names, ", "), f.total-f.ok),
			f.ok >= 1 && f.ok <= float64(f.keys), true, true}
		if len(f.unread) > 0 {
			c.measured, c.met, c.known = "the metrics of "+strings.Join(f.unread, ", ")+" were not read", false, false
		}
		out = append(out, c)
	}
	if okP {
		ttl, err := time.ParseDuration(r.facts["cache_ttl"])
		allowed := float64(proxy.Keys) * math.Ceil(proxy.Seconds/max(ttl.Seconds(), 1))
		data := dataCommands(proxy.RedisByCommand, proxy.RedisCommands)
		out = append(out, check{"Redis on the warm path: 0 per request (≤ 1 per key per cache TTL)",
			fmt.Sprintf("%.0f data commands in %.0f requests (%.0f in all, with connection set-up and subscription pings)", data, proxy.Requests, proxy.RedisCommands),
			err == nil && data <= allowed, true, true})
	}
	if kib, err := strconv.ParseFloat(r.facts["rss_kib"], 64); err == nil {
		out = append(out, check{"RSS ≤ 150 MiB with " + r.facts["rss_keys"] + " credentials", mib(r.facts["rss_kib"]) + " MiB", kib <= 150*1024, true, false})
	} else {
		out = append(out, check{"RSS ≤ 150 MiB with 100,000 credentials", "", false, false, false})
	}
	list := parseMicro(r.text("micro.txt"))
	for _, p := range verifyChecks {
		v, raw := find(list, p.pkg, p.verify), find(list, p.pkg, p.raw)
		target := p.pkg + " " + p.verify + " ≤ 1.5× " + p.raw + ", 0 allocs"
		if v == nil || raw == nil || median(raw.ns) == 0 {
			out = append(out, check{target, "", false, false, false})
			continue
		}
		vr := ratio(v, raw)
		measured := fmt.Sprintf("%.2f×, %.0f allocs", vr, median(v.allocs))
		if floor := find(list, p.pkg, p.floor); floor != nil && median(floor.ns) > 0 {
			measured += fmt.Sprintf(" (%.2f× %s, the protocol's own hashing: %.2f× %s)", ratio(v, floor), p.floor, ratio(floor, raw), p.raw)
		}
		out = append(out, check{target, measured, vr <= 1.5 && median(v.allocs) == 0, true, false})
	}
	return out
}

func (r *run) writeTargets(w io.Writer) {
	fmt.Fprintf(w, "## Issue 5 targets in this run\n\n| target | measured | |\n|---|---|---|\n")
	for _, c := range r.checks() {
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.target, c.measured, yes(c))
	}
	fmt.Fprintln(w)
	if ni, ok := r.results[lNginxID]; ok && ni.RPS > 0 {
		fmt.Fprintf(w, "Not a target, but what separates the two: against nginx sending the backend the same headers ec2proxy adds (%.0f req/s, %.2f× plain nginx)", ni.RPS, ni.RPS/r.results[lNginx].RPS)
		for _, c := range []struct{ label, name string }{{lProxy, "ec2proxy warm"}, {lProxyGo, "the goroutine server"}} {
			if res, ok := r.results[c.label]; ok {
				fmt.Fprintf(w, ", %s %.2f×", c.name, res.RPS/ni.RPS)
			}
		}
		fmt.Fprintf(w, " (median rounds).\n\n")
	}
}

// connectionCommands manage connections (a pool growing, the events
// subscription's keep-alive), not credentials: they are not per request.
var connectionCommands = map[string]bool{"HELLO": true, "CLIENT|SETNAME": true, "PING": true, "AUTH": true, "SELECT": true}

// dataCommands is the count of commands that read or write data.
func dataCommands(byName map[string]float64, total float64) float64 {
	if len(byName) == 0 {
		return total
	}
	n := 0.0
	for name, c := range byName {
		if !connectionCommands[strings.ToUpper(name)] {
			n += c
		}
	}
	return n
}
