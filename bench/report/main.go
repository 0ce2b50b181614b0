// Command report turns one benchmark run (bench/run.sh's run directory)
// into the markdown of bench/results.md: the load table with ratios to
// nginx, the per-signature-version split, Keystone and Redis load, RSS,
// the targets met or missed, and the Go micro-benchmarks.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// result mirrors the fields of bench/loadgen's JSON line that are used here.
type result struct {
	Label                  string                `json:"label"`
	Mode                   string                `json:"mode"`
	Conns                  int                   `json:"conns"`
	Keys                   int                   `json:"keys"`
	Seconds                float64               `json:"seconds"`
	Requests               float64               `json:"requests"`
	RPS                    float64               `json:"rps"`
	P50Ms                  float64               `json:"p50_ms"`
	P90Ms                  float64               `json:"p90_ms"`
	P99Ms                  float64               `json:"p99_ms"`
	P999Ms                 float64               `json:"p999_ms"`
	Expect                 string                `json:"expect"`
	Fresh                  bool                  `json:"fresh"`
	Unexpected             float64               `json:"unexpected"`
	Errors                 float64               `json:"errors"`
	Status                 map[string]float64    `json:"status"`
	Kinds                  map[string]kindResult `json:"kinds"`
	KeystoneEC2Tokens      float64               `json:"keystone_ec2tokens"`
	ProxyRequests          float64               `json:"proxy_requests"` // 0: ec2proxy's metrics were not read
	KeystoneEC2TokensTotal float64               `json:"keystone_ec2tokens_total"`
	StoreGets              float64               `json:"store_gets"`
	RedisCommands          float64               `json:"redis_commands"`
	RedisByCommand         map[string]float64    `json:"redis_by_command"`
	CPUBusy                []float64             `json:"cpu_busy_pct"`
	LoadgenCPU             float64               `json:"loadgen_cpu_pct"`
	KeystoneEC2TokensOK    float64               `json:"keystone_ec2tokens_ok_total"`
	Retried                float64               `json:"retried"`
	CPUPerRequestUs        map[string]float64    `json:"cpu_us_per_request"`
	CPUPct                 map[string]float64    `json:"cpu_pct"`
}

type kindResult struct {
	Requests float64 `json:"requests"`
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// run is everything one benchmark run left in its directory.
type run struct {
	dir string
	// results by label; for a target measured in rounds ("nginx#1",
	// "nginx#2", ...), results[label] is its median round by req/s.
	results map[string]result
	rounds  map[string][]result // label -> rounds, in order
	facts   map[string]string
}

func main() {
	dir := flag.String("run", "", "run directory written by bench/run.sh")
	ratio := flag.String("ratio", "", "only print req/s of label A ÷ label B, given as A/B (0 if either is missing)")
	checkOnly := flag.Bool("check", false, "only check the run: list its problems (a pass missing or failing, a call-count target missed) and exit 1 if there are any")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("report: ")
	if *ratio != "" {
		a, b, _ := strings.Cut(*ratio, "/")
		fmt.Printf("%.3f\n", rpsRatio(*dir, a, b))
		return
	}
	r, err := load(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if *checkOnly {
		problems := r.problems()
		for _, p := range problems {
			fmt.Println(p)
		}
		if len(problems) > 0 {
			log.Fatalf("%d problems in the run %s", len(problems), *dir)
		}
		fmt.Println("the run is whole: every pass answered as expected, and the call-count targets are met")
		return
	}
	w := bufio.NewWriter(os.Stdout)
	r.write(w)
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
}

// rpsRatio is for run.sh's decision to profile, before the report exists.
func rpsRatio(dir, a, b string) float64 {
	results, err := loadResults(dir)
	if err != nil {
		return 0
	}
	medianRounds(results)
	if results[b].RPS == 0 {
		return 0
	}
	return results[a].RPS / results[b].RPS
}

func loadResults(dir string) (map[string]result, error) {
	out := map[string]result{}
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	for {
		var res result
		if err := dec.Decode(&res); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("results.jsonl: %w", err)
		}
		out[res.Label] = res
	}
}

// medianRounds groups "label#n" results by label and sets results[label]
// to the round with the median req/s; for equal-load passes ("x@rate#n"),
// where every round has the same req/s, the round with the median p99.
func medianRounds(results map[string]result) map[string][]result {
	rounds := map[string][]result{}
	for label, res := range results {
		if base, n, ok := strings.Cut(label, "#"); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 1 {
				for len(rounds[base]) < i {
					rounds[base] = append(rounds[base], result{})
				}
				rounds[base][i-1] = res
			}
		}
	}
	for base, list := range rounds {
		sorted := slices.Clone(list)
		if strings.HasSuffix(base, atRate) {
			slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.P99Ms, b.P99Ms) })
		} else {
			slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
		}
		results[base] = sorted[len(sorted)/2]
	}
	return rounds
}

func load(dir string) (*run, error) {
	results, err := loadResults(dir)
	if err != nil {
		return nil, err
	}
	r := &run{dir: dir, results: results, rounds: medianRounds(results), facts: map[string]string{}}
	facts, err := os.ReadFile(filepath.Join(dir, "facts.env"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(facts), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r.facts[k] = v
		}
	}
	return r, nil
}

// text returns a file of the run directory, or "" if it is absent.
func (r *run) text(name string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, name))
	return strings.TrimRight(string(b), "\n")
}
