package main

import (
	"strconv"
	"time"
)

// result is the JSON line loadgen prints; bench/report reads it.
type result struct {
	Label      string  `json:"label"`
	Target     string  `json:"target"`
	Mode       string  `json:"mode"`           // timed or once
	Rate       float64 `json:"rate,omitempty"` // open loop: requests/s scheduled
	Conns      int     `json:"conns"`
	Keys       int     `json:"keys"`
	Seconds    float64 `json:"seconds"`
	Requests   uint64  `json:"requests"`
	RPS        float64 `json:"rps"`
	MeanMs     float64 `json:"mean_ms"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	Expect     string  `json:"expect"`
	Fresh      bool    `json:"fresh"`
	Unexpected uint64  `json:"unexpected"`
	Retried    uint64  `json:"retried"`
	Errors     uint64  `json:"errors"`

	Status map[string]uint64     `json:"status"`
	Kinds  map[string]kindResult `json:"kinds"`

	// Deltas over the measured window (the whole pass in once mode).
	KeystoneEC2Tokens      float64 `json:"keystone_ec2tokens"`
	KeystoneEC2TokensTotal float64 `json:"keystone_ec2tokens_total"` // since ec2proxy started
	KeystoneEC2TokensOK    float64 `json:"keystone_ec2tokens_ok_total"`
	StoreGets              float64 `json:"store_gets"`
	// ProxyRequests is ec2proxy's own count of the pass's requests: 0 if
	// its metrics could not be read, and then its Keystone counts say
	// nothing.
	ProxyRequests  float64          `json:"proxy_requests"`
	RedisCommands  int64            `json:"redis_commands"` // all but INFO (ours)
	RedisByCommand map[string]int64 `json:"redis_by_command,omitempty"`
	CPUBusy        []float64        `json:"cpu_busy_pct"`    // per core
	LoadgenCPU     float64          `json:"loadgen_cpu_pct"` // of one core
	// CPU time of each watched process per answered request, in µs, and
	// its share of one core.
	CPUPerRequestUs map[string]float64 `json:"cpu_us_per_request,omitempty"`
	CPUPct          map[string]float64 `json:"cpu_pct,omitempty"`
}

type kindResult struct {
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summarize(o *options, r *runResult, keys int) result {
	var all hist
	res := result{
		Label: o.label, Target: o.target, Mode: "timed", Conns: o.conns, Keys: keys,
		Seconds: r.elapsed.Seconds(), Expect: o.expect.String(), Fresh: o.fresh && !o.once, Unexpected: r.unexpected, Errors: r.status[0],
		Status: map[string]uint64{}, Kinds: map[string]kindResult{},
	}
	if o.once {
		res.Mode = "once"
	}
	res.Rate = o.rate
	for k := range r.hists {
		h := &r.hists[k]
		all.merge(h)
		if h.n > 0 {
			res.Kinds[kindNames[k]] = kindResult{Requests: h.n, RPS: float64(h.n) / res.Seconds, P50Ms: ms(h.quantile(0.5)), P99Ms: ms(h.quantile(0.99))}
		}
	}
	res.Requests = all.n
	res.RPS = float64(all.n) / res.Seconds
	res.MeanMs, res.MaxMs = ms(all.mean()), ms(time.Duration(all.max))
	res.P50Ms, res.P90Ms, res.P99Ms, res.P999Ms = ms(all.quantile(0.5)), ms(all.quantile(0.9)), ms(all.quantile(0.99)), ms(all.quantile(0.999))
	for s, n := range r.status[1:] {
		if n > 0 {
			res.Status[strconv.Itoa(s+1)] = n
		}
	}

	b, a := r.before, r.after
	if a.metrics != nil { // totals since ec2proxy started
		res.KeystoneEC2TokensTotal = sum(a.metrics, "ec2proxy_keystone_requests_total", `op="ec2tokens"`)
		res.KeystoneEC2TokensOK = sum(a.metrics, "ec2proxy_keystone_requests_total", `op="ec2tokens"`, `result="ok"`)
	}
	if a.metrics != nil && b.metrics != nil { // deltas: both reads, or a count left at 0 (ProxyRequests says which)
		res.KeystoneEC2Tokens = sum(a.metrics, "ec2proxy_keystone_requests_total", `op="ec2tokens"`) - sum(b.metrics, "ec2proxy_keystone_requests_total", `op="ec2tokens"`)
		res.StoreGets = sum(a.metrics, "ec2proxy_store_requests_total") - sum(b.metrics, "ec2proxy_store_requests_total")
		res.ProxyRequests = sum(a.metrics, "ec2proxy_requests_total") - sum(b.metrics, "ec2proxy_requests_total")
	}
	if a.redis != nil && b.redis != nil {
		res.RedisByCommand = map[string]int64{}
		for cmd, n := range a.redis {
			if d := n - b.redis[cmd]; d > 0 && cmd != "info" {
				res.RedisByCommand[cmd] = d
				res.RedisCommands += d
			}
		}
	}
	res.CPUBusy = busy(b.cpu, a.cpu)
	res.Retried = r.retried
	if len(a.procs) > 0 && all.n > 0 {
		res.CPUPerRequestUs, res.CPUPct = map[string]float64{}, map[string]float64{}
		for name, t := range a.procs {
			d := t - b.procs[name]
			res.CPUPerRequestUs[name] = float64(d.Microseconds()) / float64(all.n)
			res.CPUPct[name] = 100 * float64(d) / float64(r.elapsed)
		}
	}
	if r.elapsed > 0 {
		res.LoadgenCPU = 100 * float64(a.self-b.self) / float64(r.elapsed)
	}
	return res
}
