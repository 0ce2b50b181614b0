//go:build !race

package test

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// The proxy package's allocation test serves over an in-memory listener, so
// it cannot see what the socket layer allocates: a closure per read and
// write in internal/rawsock once cost 9.6 allocations per proxied request
// there, and a GC a second under load. This one serves SigV2 and SigV4
// requests over loopback TCP keep-alive connections, raw socket I/O on (the
// default) and off, and counts every allocation whose stack passes through
// ec2proxy's or fasthttp's code (not the test's client or backend, which
// share the process) with the allocation profile recording all of them.
// (Not under -race: sync.Pool then drops items on purpose.)
func TestWarmPathAllocsOverTCP(t *testing.T) {
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	// The test's client and backend allocate in this process; a collection
	// they caused would empty the proxy's pools mid-window, which a proxy
	// process of its own, allocating nothing, does not see. Collect only
	// when reading the profile.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, raw := range []bool{true, false} {
		t.Run(fmt.Sprintf("raw_socket_io=%v", raw), func(t *testing.T) {
			s := startStack(t, func(c *configs.Config) {
				c.Server.RawSocketIO = raw
				c.Log.Level, c.Log.Access = "info", false // production logging
			})
			access, secret := s.putDemoCredential()
			load := newWarmLoad(s.url, strings.TrimPrefix(s.url, "http://"), keyPair{access: access, secret: secret})
			defer load.close()
			load.send(t, 200) // credential, token, connections, pools
			// Reading the profile collects garbage, which empties the
			// pools the request state comes from: refilling them costs
			// the same in a short window as in a long one, so the
			// difference between the two is what requests cost.
			const short, long = 200, 4200
			a0 := proxyAllocs()
			load.send(t, short)
			a1 := proxyAllocs()
			load.send(t, long)
			a2 := proxyAllocs()
			extra := (a2.total - a1.total) - (a1.total - a0.total)
			perRequest := float64(extra) / (long - short)
			t.Logf("%d and %d requests: %d and %d allocations in ec2proxy's and fasthttp's code: %.3f per request", short, long, a1.total-a0.total, a2.total-a1.total, perRequest)
			// A timer or a buffer grown now and then is fine; one
			// allocation per request is what this is here to catch.
			if perRequest > 0.1 {
				t.Errorf("the warm path allocates %.2f times per request over TCP; want about 0. Where, per request:\n%s", perRequest, perSite(a0, a1, a2, long-short))
			}
		})
	}
}

// allocSites counts objects allocated by the serving code, by site: the
// innermost ec2proxy or fasthttp function on the stack, then the stack's
// innermost frames (with lines), which say where to look.
type allocSites struct {
	total  int64
	bySite map[string]int64
}

// proxyAllocs reads the allocation profile (MemProfileRate 1: every
// allocation) and keeps the sites whose stack passes through ec2proxy or
// fasthttp, but not through the test's own packages (its client signs with
// sigv4) or the demo backend.
func proxyAllocs() allocSites {
	runtime.GC() // the profile is as of the last completed cycle but one
	runtime.GC()
	var records []runtime.MemProfileRecord
	for n := 256; ; n *= 2 {
		records = make([]runtime.MemProfileRecord, n)
		if got, ok := runtime.MemProfile(records, true); ok {
			records = records[:got]
			break
		}
	}
	sites := allocSites{bySite: map[string]int64{}}
	for _, r := range records {
		site := servingSite(r.Stack())
		if site != "" {
			sites.total += r.AllocObjects
			sites.bySite[site] += r.AllocObjects
		}
	}
	return sites
}

// servingSite names the site of an allocation with this stack, or "" when
// the stack is not the serving code's.
func servingSite(stack []uintptr) string {
	site := ""
	var inner []string // the innermost frames, for the site's name
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if len(inner) < 5 {
			inner = append(inner, fmt.Sprintf("%s:%d", f.Function, f.Line))
		}
		switch {
		case strings.HasPrefix(f.Function, "github.com/ec2proxy/ec2proxy/test."),
			strings.HasPrefix(f.Function, "github.com/ec2proxy/ec2proxy/demobackend."):
			return ""
		case site == "" && (strings.HasPrefix(f.Function, "github.com/ec2proxy/ec2proxy/") ||
			strings.HasPrefix(f.Function, "github.com/valyala/fasthttp.")):
			site = f.Function + " <- " + strings.Join(inner, " <- ")
		}
		if !more {
			return site
		}
	}
}

// perSite lists what each site allocated in the long window beyond the
// short one, per request, most first.
func perSite(a0, a1, a2 allocSites, n int) string {
	type row struct {
		site  string
		count int64
	}
	var rows []row
	for site, c := range a2.bySite {
		if d := (c - a1.bySite[site]) - (a1.bySite[site] - a0.bySite[site]); d > 0 {
			rows = append(rows, row{site, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].count > rows[j].count })
	var b strings.Builder
	for i, r := range rows {
		if i == 15 {
			break
		}
		fmt.Fprintf(&b, "  %.3f  %s\n", float64(r.count)/float64(n), r.site)
	}
	return b.String()
}

// warmLoad sends signed requests over 4 keep-alive connections, kept
// open from one batch to the next.
type warmLoad struct {
	endpoint, host string
	k              keyPair
	clients        [4]*http.Client
}

func newWarmLoad(endpoint, host string, k keyPair) *warmLoad {
	l := &warmLoad{endpoint: endpoint, host: host, k: k}
	for i := range l.clients {
		l.clients[i] = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	return l
}

func (l *warmLoad) close() {
	for _, c := range l.clients {
		c.CloseIdleConnections()
	}
}

// send sends n requests, half SigV2, half SigV4 (form POSTs), and fails
// the test unless each is answered 200.
func (l *warmLoad) send(t *testing.T, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, len(l.clients))
	for c, client := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += len(l.clients) {
				req := signedV2(http.MethodPost, l.endpoint, l.host, l.k.access, l.k.secret, map[string]string{"Action": "DescribeRegions", "Version": "2016-11-15"})
				if i%2 == 1 {
					req = signedV4Form(l.endpoint, l.host, l.k, "Action=DescribeRegions&Version=2016-11-15")
				}
				if res := do(client, req); res.status != http.StatusOK {
					errs <- fmt.Sprintf("request %d: %d %s %v %s", i, res.status, res.code, res.err, res.body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// signedV4Form builds a SigV4-signed form POST for endpoint, signed for host.
func signedV4Form(endpoint, host string, k keyPair, body string) *http.Request {
	const contentType = "application/x-www-form-urlencoded; charset=utf-8"
	authorization, amzDate, _ := sigv4.Sign(sigv4.Signing{
		Method: http.MethodPost, Host: host, Path: "/", ContentType: contentType, Body: []byte(body),
		AccessKey: k.access, Secret: k.secret, Region: "RegionOne", Service: "ec2", Time: time.Now(),
	})
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	req.Host = host
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", authorization)
	req.Header.Set("X-Amz-Date", amzDate)
	return req
}
