package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// bench is one Go benchmark's repeated results (go test -count N).
type bench struct {
	pkg, name         string
	ns, bytes, allocs []float64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// trimProcs removes the -GOMAXPROCS suffix go test adds when GOMAXPROCS
// is not 1, and only that: names contain dashes of their own.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

// parseMicro reads `go test -bench -benchmem` output, package by package.
func parseMicro(out string) []*bench {
	var list []*bench
	byKey := map[string]*bench{}
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := trimProcs(fields[0])
		b := byKey[pkg+"."+name]
		if b == nil {
			b = &bench{pkg: pkg, name: strings.TrimPrefix(name, "Benchmark")}
			byKey[pkg+"."+name] = b
			list = append(list, b)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				b.ns = append(b.ns, v)
			case "B/op":
				b.bytes = append(b.bytes, v)
			case "allocs/op":
				b.allocs = append(b.allocs, v)
			}
		}
	}
	return list
}

// verifyChecks are the issue's "verification ≤ 1.5× the raw HMAC of the
// same string": typical valid requests from real clients against the bare
// pre-keyed HMAC of their own string to sign. Each package's Vectors
// benchmark gives, per captured request, parse+verify (the whole cost),
// verify (on the parsed request) and raw-hmac; sigv4's also gives the
// protocol's floor (body hash, canonical request hash and that HMAC:
// protocol-hashes), shown beside the raw HMAC.
var verifyChecks = []struct{ pkg, verify, raw, floor string }{
	{"sigv2", sigv2Docs + "/verify", sigv2Docs + "/raw-hmac", ""},
	{"sigv2", sigv2Docs + "/parse+verify", sigv2Docs + "/raw-hmac", ""},
	{"sigv4", sigv4Regions + "/verify", sigv4Regions + "/raw-hmac", sigv4Regions + "/protocol-hashes"},
	{"sigv4", sigv4Filters + "/verify", sigv4Filters + "/raw-hmac", sigv4Filters + "/protocol-hashes"},
	{"sigv4", sigv4Filters + "/parse+verify", sigv4Filters + "/raw-hmac", sigv4Filters + "/protocol-hashes"},
}

const (
	sigv2Docs    = "Vectors/published-openstack-docs-describe-availability-zones"
	sigv4Regions = "Vectors/botocore-py-post-describe-regions"
	sigv4Filters = "Vectors/botocore-py-post-filters"
)

// baselines returns what b is compared with: its vector's raw-hmac (and,
// for sigv4, protocol-hashes) for a Vectors benchmark, the raw HMAC and
// the protocol floor for sigv4's others.
func baselines(b *bench) []string {
	vector, _, ok := strings.Cut(strings.TrimPrefix(b.name, "Vectors/"), "/")
	switch {
	case strings.HasPrefix(b.name, "Vectors/") && ok && b.pkg == "sigv2":
		return []string{"Vectors/" + vector + "/raw-hmac"}
	case strings.HasPrefix(b.name, "Vectors/") && ok && b.pkg == "sigv4":
		return []string{"Vectors/" + vector + "/raw-hmac", "Vectors/" + vector + "/protocol-hashes"}
	case b.pkg == "sigv4":
		return []string{"RawHMACSHA256", "RawSigV4Hashes"}
	}
	return nil
}

// ratio is a's time over b's, the median of the per-round ratios when both
// ran in every round: the rounds run at different times, and this VM's
// speed drifts between them more than between neighbouring benchmarks.
func ratio(a, b *bench) float64 {
	if len(a.ns) == 0 || len(a.ns) != len(b.ns) {
		return median(a.ns) / median(b.ns)
	}
	r := make([]float64, len(a.ns))
	for i := range a.ns {
		r[i] = a.ns[i] / b.ns[i]
	}
	return median(r)
}

func find(list []*bench, pkg, name string) *bench {
	for _, b := range list {
		if b.pkg == pkg && b.name == name {
			return b
		}
	}
	return nil
}

func (r *run) writeMicro(w io.Writer) {
	out := r.text("micro.txt")
	if out == "" {
		return
	}
	list := parseMicro(out)
	fmt.Fprintf(w, "## Go micro-benchmarks (`go test -bench . -benchmem ./sigv2 ./sigv4`, %s rounds of -count 1, %s)\n\n", r.facts["micro_count"], r.facts["micro_pinning"])
	fmt.Fprintf(w, "| package | benchmark | ns/op (median) | B/op | allocs/op | ÷ baseline (median of the rounds' ratios) |\n|---|---|---:|---:|---:|---|\n")
	for _, b := range list {
		var ratios []string
		for _, name := range baselines(b) {
			if raw := find(list, b.pkg, name); raw != nil && median(raw.ns) > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f× %s", ratio(b, raw), name[strings.LastIndexByte(name, '/')+1:]))
			}
		}
		ratio := "–"
		if len(ratios) > 0 {
			ratio = strings.Join(ratios, "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.0f | %s |\n", b.pkg, b.name, median(b.ns), median(b.bytes), median(b.allocs), ratio)
	}
	fmt.Fprintf(w, "\n<details><summary>raw output</summary>\n\n```\n%s\n```\n</details>\n\n", out)
}
