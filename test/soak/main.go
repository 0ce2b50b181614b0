// Command soak runs ec2proxy under steady mixed load for a while and samples
// its RSS and goroutine count, to show they stay flat (no leak).
//
//	go run ./test/soak -duration 10m
//
// It builds and starts ec2proxy (standalone identity, a credentials file
// with many keys) in front of a small backend, drives it with valid SigV2
// and SigV4 requests plus failures (wrong secrets, unknown keys, garbage),
// samples /proc/PID/status and /metrics every interval, prints a table, and
// exits non-zero if RSS or goroutines in the last third of the run exceed
// the middle third's by more than -tolerance.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	interval := flag.Duration("interval", 10*time.Second, "sampling interval")
	workers := flag.Int("workers", 16, "concurrent clients")
	keys := flag.Int("keys", 1000, "distinct access keys")
	tolerance := flag.Float64("tolerance", 0.15, "allowed growth of the last third over the middle third")
	redisAddr := flag.String("redis", "", "host:port of a Redis: credentials there, with change events, the fleet rate limit and the policy on (default: a credentials file)")
	flag.Parse()
	if err := run(*duration, *interval, *workers, *keys, *tolerance, *redisAddr); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type sample struct {
	at         time.Duration
	rssKiB     int
	goroutines int
	ok, failed int64
}

func run(duration, interval time.Duration, workers, keys int, tolerance float64, redisAddr string) error {
	dir, err := os.MkdirTemp("", "ec2proxy-soak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ec2proxy")
	fmt.Fprintln(os.Stderr, "building ec2proxy...")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ec2proxy").CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "<DescribeRegionsResponse/>")
	})}
	bln, _ := net.Listen("tcp", "127.0.0.1:0")
	go backend.Serve(bln)
	defer backend.Close()

	var creds strings.Builder
	creds.WriteString("credentials:\n")
	for i := 0; i < keys; i++ {
		fmt.Fprintf(&creds, "- {access_key: AK%06d, secret: SK%06d, user_id: u%d, project_id: p%d}\n", i, i, i, i)
	}
	credFile := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(credFile, []byte(creds.String()), 0o600)
	addr, admin := freeAddr(), freeAddr()
	conf := filepath.Join(dir, "ec2proxy.yaml")
	storeConfig := fmt.Sprintf("credentials: {file: %q, cache_ttl: 5s}\n", credFile)
	churn := func(context.Context) {}
	if redisAddr != "" {
		config, c, cleanup, err := redisSetup(context.Background(), redisAddr, dir, keys)
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		defer cleanup()
		storeConfig, churn = config, c
	}
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nadmin_listen: %q\nidentity: {mode: standalone}\nroutes: [{path_prefix: /, backend: \"http://%s\"}]\nlog: {level: warn}\n%s",
		addr, admin, bln.Addr(), storeConfig)), 0o600)
	cmd := exec.Command(bin, "serve", "-config", conf)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	if err := waitUp("http://" + admin + "/healthz"); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	go churn(ctx)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := w; ctx.Err() == nil; i += workers {
				expectOK, req := request(addr, i, keys)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if (resp.StatusCode == 200) == expectOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}(w)
	}

	var samples []sample
	start := time.Now()
	fmt.Printf("%8s %10s %11s %12s %8s\n", "time", "RSS MiB", "goroutines", "requests", "wrong")
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		s := sample{at: time.Since(start).Round(time.Second), rssKiB: rss(cmd.Process.Pid), goroutines: goroutines("http://" + admin + "/metrics"), ok: ok.Load(), failed: failed.Load()}
		samples = append(samples, s)
		fmt.Printf("%8v %10.1f %11d %12d %8d\n", s.at, float64(s.rssKiB)/1024, s.goroutines, s.ok+s.failed, s.failed)
	}
	wg.Wait()
	return verdict(samples, tolerance)
}

// request builds request i: mostly valid SigV2/SigV4, some that must fail.
func request(addr string, i, keys int) (bool, *http.Request) {
	k := i % keys
	access, secret := fmt.Sprintf("AK%06d", k), fmt.Sprintf("SK%06d", k)
	expectOK := true
	switch i % 20 {
	case 7:
		secret, expectOK = "wrong", false
	case 13:
		access, expectOK = fmt.Sprintf("UNKNOWN%d", i), false
	}
	body := fmt.Sprintf("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%%3AName&Filter.1.Value.1=n%d", i)
	req, _ := http.NewRequest("POST", "http://"+addr+"/", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	now := time.Now()
	if i%2 == 0 {
		params := map[string]string{"Action": "DescribeInstances", "Version": "2016-11-15", "Filter.1.Name": "tag:Name", "Filter.1.Value.1": fmt.Sprint("n", i),
			"AWSAccessKeyId": access, "SignatureMethod": "HmacSHA256", "SignatureVersion": "2", "Timestamp": now.UTC().Format("2006-01-02T15:04:05Z")}
		var pairs []sigv2.Pair
		v := url.Values{}
		for n, val := range params {
			pairs = append(pairs, sigv2.Pair{Name: n, Value: val})
			v.Set(n, val)
		}
		v.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign("POST", addr, "/", pairs)))
		body = v.Encode()
	} else {
		auth, date, _ := sigv4.Sign(sigv4.Signing{Method: "POST", Host: addr, Path: "/", ContentType: req.Header.Get("Content-Type"),
			Body: []byte(body), AccessKey: access, Secret: secret, Region: "RegionOne", Service: "ec2", Time: now})
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Amz-Date", date)
	}
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	return expectOK, req
}

// verdict compares the last third of the samples with the middle third.
func verdict(s []sample, tolerance float64) error {
	if len(s) < 6 {
		return errors.New("too few samples to judge: run longer or sample more often")
	}
	third := len(s) / 3
	avg := func(part []sample, f func(sample) int) float64 {
		t := 0
		for _, x := range part {
			t += f(x)
		}
		return float64(t) / float64(len(part))
	}
	mid, last := s[third:2*third], s[2*third:]
	var problems []string
	for _, m := range []struct {
		name string
		f    func(sample) int
	}{{"RSS", func(x sample) int { return x.rssKiB }}, {"goroutines", func(x sample) int { return x.goroutines }}} {
		a, b := avg(mid, m.f), avg(last, m.f)
		fmt.Printf("%s: middle third %.0f, last third %.0f (%+.1f%%)\n", m.name, a, b, 100*(b-a)/a)
		if b > a*(1+tolerance) {
			problems = append(problems, fmt.Sprintf("%s grew %.1f%%", m.name, 100*(b-a)/a))
		}
	}
	final := s[len(s)-1]
	if final.failed > 0 {
		problems = append(problems, fmt.Sprintf("%d requests got an unexpected answer", final.failed))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Println("flat: no growth beyond tolerance, every answer as expected")
	return nil
}

func rss(pid int) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func goroutines(metricsURL string) int {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func freeAddr() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(url string) error {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	return errors.New("ec2proxy did not start")
}
