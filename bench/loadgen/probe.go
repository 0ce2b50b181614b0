package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// snapshot is what the run reads around its measured window: ec2proxy's
// counters, Redis's per-command call counts, and CPU time per core.
type snapshot struct {
	metrics map[string]float64 // series (name{labels}) -> value, ec2proxy_* only
	redis   map[string]int64   // command -> calls
	cpu     []cpuTimes
	self    time.Duration            // this process's user+system CPU time
	procs   map[string]time.Duration // watched processes' CPU time
}

type cpuTimes struct{ busy, total uint64 }

type probe struct {
	metricsURL string
	redis      *redis.Client
	procs      map[string][]int // name -> PIDs
}

func newProbe(metricsURL, redisAddr string, procs map[string][]int) *probe {
	p := &probe{metricsURL: metricsURL, procs: procs}
	if redisAddr != "" {
		p.redis = redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 1, DisableIdentity: true})
	}
	return p
}

func (p *probe) take() snapshot {
	s := snapshot{cpu: readCPU(), self: selfCPU(), procs: map[string]time.Duration{}}
	for name, pids := range p.procs {
		for _, pid := range pids {
			s.procs[name] += procCPU(pid)
		}
	}
	if p.metricsURL != "" {
		s.metrics = scrape(p.metricsURL)
	}
	if p.redis != nil {
		s.redis = commandStats(p.redis)
	}
	return s
}

// scrape reads the ec2proxy_* series of a Prometheus text exposition;
// nil if it could not be read: then no count may be taken as 0.
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "ec2proxy_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return out
}

// sum adds the series of name whose labels include every given label
// (e.g. `op="ec2tokens"`).
func sum(m map[string]float64, name string, labels ...string) float64 {
	var total float64
series:
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(k, l) {
				continue series
			}
		}
		total += v
	}
	return total
}

// commandStats reads INFO commandstats: cmdstat_hgetall:calls=12,...
func commandStats(c *redis.Client) map[string]int64 {
	out := map[string]int64{}
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		if n, err := strconv.ParseInt(calls, 10, 64); err == nil {
			out[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return out
}

// readCPU returns busy and total jiffies per core from /proc/stat.
func readCPU() []cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []cpuTimes
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !strings.HasPrefix(fields[0], "cpu") || fields[0] == "cpu" {
			continue
		}
		var t cpuTimes
		for i, f := range fields[1:] {
			n, _ := strconv.ParseUint(f, 10, 64)
			t.total += n
			if i != 3 && i != 4 { // idle, iowait
				t.busy += n
			}
		}
		out = append(out, t)
	}
	return out
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parsePIDs reads name=PID[+PID...],... ; a name may list several PIDs
// (nginx's master and worker).
func parsePIDs(s string) (map[string][]int, error) {
	out := map[string][]int{}
	if s == "" {
		return out, nil
	}
	for _, item := range strings.Split(s, ",") {
		name, list, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("-pids: %q is not name=PID", item)
		}
		for _, p := range strings.Split(list, "+") {
			pid, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("-pids: %q is not a PID", p)
			}
			out[name] = append(out[name], pid)
		}
	}
	return out, nil
}

// procCPU is a process's user+system time (all threads) from
// /proc/PID/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// busy is each core's busy share between two snapshots, in percent.
func busy(a, b []cpuTimes) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if dt := b[i].total - a[i].total; dt > 0 {
			out = append(out, 100*float64(b[i].busy-a[i].busy)/float64(dt))
		}
	}
	return out
}
