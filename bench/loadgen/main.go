// Command loadgen drives one target with signed EC2 requests over a fixed
// number of keep-alive connections and reports requests/s and latency
// percentiles as one JSON line. Every target of the benchmark (backend,
// nginx, ec2proxy) gets the same requests from the same generator.
//
// Two modes:
//   - timed (default): warm up, then measure for -duration; each connection
//     cycles through a pool of requests signed at start (both SigV2 and
//     SigV4 for every key), so requests stay within the timestamp window
//     as long as warm-up plus duration fits in it;
//   - -once: send one request per key (kinds alternating) and stop, to fill
//     ec2proxy's caches.
//
// With -fresh, a timed run signs every request just before sending it,
// with a unique ClientToken, for replay protection; with -fresh and
// -wrong-secret, every request carries a unique ClientToken and a made-up
// signature, distinct from all others (no signing: flood.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"
)

type options struct {
	target, host      string
	label             string
	creds             string
	keys              int
	kinds             string
	wrongSecret       bool
	region, service   string
	conns             int
	warmup, duration  time.Duration
	rate              float64
	once              bool
	fresh             bool
	retries           int
	pids              string
	expect            expectation
	metricsURL, redis string
	out               string
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "", "host:port to connect to (required)")
	flag.StringVar(&o.host, "host", "", "Host header, signed (default: -target)")
	flag.StringVar(&o.label, "label", "", "name of the target in the report")
	flag.StringVar(&o.creds, "creds", "", "credentials file, access<TAB>secret per line (required)")
	flag.IntVar(&o.keys, "keys", 0, "use the first N credentials (0: all)")
	flag.StringVar(&o.kinds, "kinds", "sigv2,sigv4", "signature kinds to send")
	flag.BoolVar(&o.wrongSecret, "wrong-secret", false, "sign with a wrong secret (invalid-signature flood)")
	flag.StringVar(&o.region, "region", "RegionOne", "SigV4 credential-scope region")
	flag.StringVar(&o.service, "service", "ec2", "SigV4 credential-scope service")
	flag.IntVar(&o.conns, "conns", 64, "concurrent connections")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring (timed mode)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time (timed mode)")
	flag.BoolVar(&o.once, "once", false, "send one request per key and stop")
	flag.Float64Var(&o.rate, "rate", 0, "timed mode: send this many requests/s in all, on a fixed schedule (open loop; latency counts from the scheduled time); 0: as fast as answers come")
	flag.IntVar(&o.retries, "retries", 3, "once mode: send a request again after a 5xx answer, up to N times")
	flag.StringVar(&o.pids, "pids", "", "name=PID,... processes whose CPU time per request is reported (a PID's children count too)")
	flag.BoolVar(&o.fresh, "fresh", false, "sign every request just before sending it, with a unique ClientToken (timed mode)")
	o.expect = expectation{status: 200}
	flag.Var(&o.expect, "expect", "expected HTTP status, e.g. 200, 403 or 4xx; others are counted as unexpected")
	flag.StringVar(&o.metricsURL, "metrics", "", "ec2proxy /metrics URL, read before and after the measured window")
	flag.StringVar(&o.redis, "redis", "", "Redis address whose INFO commandstats is read before and after")
	flag.StringVar(&o.out, "out", "", "append the JSON result line to this file (it is printed too)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	if o.target == "" || o.creds == "" {
		flag.Usage()
		os.Exit(2)
	}
	if o.host == "" {
		o.host = o.target
	}
	if o.label == "" {
		o.label = o.target
	}
	kinds, err := parseKinds(o.kinds)
	if err != nil {
		log.Fatal(err)
	}
	creds, err := loadCredentials(o.creds, o.keys)
	if err != nil {
		log.Fatal(err)
	}
	s := &signer{host: o.host, region: o.region, service: o.service, wrongSecret: o.wrongSecret}
	var pool []request
	fresh := o.fresh && !o.once
	if !fresh {
		pool = s.pool(creds, kinds, o.once)
	} else if o.wrongSecret {
		s.flood = s.floodTemplates(creds, kinds, time.Now())
	}

	if !o.once {
		o.retries = 0 // a timed run measures answers as they come
	}
	if o.rate < 0 || o.rate > 0 && o.once {
		log.Fatal("-rate must be positive, and is for timed runs only")
	}
	procs, err := parsePIDs(o.pids)
	if err != nil {
		log.Fatal(err)
	}
	r := run(&o, pool, s, fresh, creds, kinds, newProbe(o.metricsURL, o.redis, procs))
	res := summarize(&o, r, len(creds))
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(f, string(line))
		f.Close()
	}
	log.Printf("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms (%d requests in %.1fs; %d unexpected, %d transport errors)",
		o.label, res.RPS, res.P50Ms, res.P99Ms, res.Requests, res.Seconds, res.Unexpected, res.Errors)
	if r.sample != nil {
		log.Printf("%s: first unexpected answer:\n%s", o.label, r.sample)
	}
	if res.Requests == 0 {
		log.Fatalf("%s: no request completed (%d errors)", o.label, res.Errors)
	}
}

// expectation is an exact status (403) or a class (4xx).
type expectation struct {
	status int
	class  bool
}

func (e *expectation) String() string {
	if e.class {
		return strconv.Itoa(e.status/100) + "xx"
	}
	return strconv.Itoa(e.status)
}

func (e *expectation) Set(s string) error {
	if c, ok := strings.CutSuffix(s, "xx"); ok && len(c) == 1 && c[0] >= '1' && c[0] <= '5' {
		e.status, e.class = int(c[0]-'0')*100, true
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return fmt.Errorf("want a status such as 200 or a class such as 4xx")
	}
	e.status, e.class = n, false
	return nil
}

func (e expectation) ok(status int) bool {
	if e.class {
		return status/100 == e.status/100
	}
	return status == e.status
}

func parseKinds(s string) ([]int, error) {
	var out []int
	for _, k := range strings.Split(s, ",") {
		switch strings.TrimSpace(k) {
		case "sigv2", "v2":
			out = append(out, kindV2)
		case "sigv4", "v4":
			out = append(out, kindV4)
		default:
			return nil, fmt.Errorf("-kinds: %q is not sigv2 or sigv4", k)
		}
	}
	return out, nil
}
