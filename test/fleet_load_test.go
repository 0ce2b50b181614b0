package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var nonce atomic.Int64

// signedV2 builds a SigV2 request for endpoint (what the client connects
// to) signed for host (what it says in Host; normally the endpoint's).
func signedV2(method, endpoint, host, access, secret string, params map[string]string) *http.Request {
	p := map[string]string{"Nonce": strconv.FormatInt(nonce.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	for k, v := range params {
		p[k] = v
	}
	form := signV2(method, host, "/", access, secret, p)
	encoded := encodeRFC3986(form)
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, endpoint+"/?"+encoded, nil)
	} else {
		req, _ = http.NewRequest(method, endpoint+"/", strings.NewReader(encoded))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	req.Host = host
	return req
}

// fleetResult is one answer: status, EC2 code, the identity the backend
// saw (X-Demo-Identity, passed back through ec2proxy), the body.
type fleetResult struct {
	status   int
	code     string
	identity string
	body     string
	start    time.Time
	took     time.Duration
	err      error
	token    string // the ClientToken sent, if any
}

func (r fleetResult) String() string {
	if r.err != nil {
		return fmt.Sprintf("error %v after %v", r.err, r.took)
	}
	return fmt.Sprintf("%d %s after %v: %.200s", r.status, r.code, r.took, r.body)
}

func do(c *http.Client, req *http.Request) fleetResult {
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return fleetResult{err: err, start: start, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := fleetResult{status: resp.StatusCode, body: string(b), identity: resp.Header.Get("X-Demo-Identity"), start: start, took: time.Since(start), err: err}
	if m := codeRE.FindStringSubmatch(r.body); m != nil {
		r.code = m[1]
	}
	return r
}

// correct says whether r is the backend's answer to action for k.
func (r fleetResult) correct(action string, k keyPair) bool {
	return r.err == nil && r.status == 200 && strings.Contains(r.body, "<"+action+"Response") &&
		strings.Contains(r.identity, "user="+k.user+" ") && strings.Contains(r.identity, "project="+k.project+" ")
}

// sourceClient connects from the given loopback address (127.0.0.2 is not
// a trusted proxy; 127.0.0.1 is).
func sourceClient(source string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4,
	}}
}

// ---------------------------------------------------------------------------
// Load through haproxy, with a kind of request per goroutine.

type loadKind struct {
	name     string
	method   string
	action   string
	readOnly bool // haproxy may replay it
}

var loadKinds = []loadKind{
	{"GET DescribeRegions", http.MethodGet, "DescribeRegions", true},
	{"POST DescribeAvailabilityZones", http.MethodPost, "DescribeAvailabilityZones", true},
	{"POST CreateTags", http.MethodPost, "CreateTags", false},
}

type loadRun struct {
	mu      sync.Mutex
	results map[string][]fleetResult // by kind name
	stop    chan struct{}
	wg      sync.WaitGroup

	// dying, if set, is when a replica was killed and when its process was
	// gone: see check.
	dying [2]time.Time
}

// teardownGrace is how long after a killed replica's process is gone
// haproxy may still hand a request to a connection of it that the kernel
// closed but haproxy has not yet seen closed.
const teardownGrace = 100 * time.Millisecond

// startLoad runs perKind goroutines of every load kind against endpoint,
// each on its own keep-alive connection, until stop.
func startLoad(endpoint string, k keyPair, perKind int) *loadRun {
	l := &loadRun{results: map[string][]fleetResult{}, stop: make(chan struct{})}
	host := strings.TrimPrefix(endpoint, "http://")
	for _, kind := range loadKinds {
		for i := 0; i < perKind; i++ {
			l.wg.Add(1)
			go func(kind loadKind, i int) {
				defer l.wg.Done()
				c := sourceClient("127.0.0.1", true)
				defer c.CloseIdleConnections()
				for n := 0; ; n++ {
					select {
					case <-l.stop:
						return
					default:
					}
					params := map[string]string{"Action": kind.action}
					token := ""
					if !kind.readOnly {
						token = fmt.Sprintf("tok-%d-%d-%d", i, n, time.Now().UnixNano())
						params["ClientToken"], params["ResourceId.1"], params["Tag.1.Key"] = token, "i-1", "k"
					}
					r := do(c, signedV2(kind.method, endpoint, host, k.access, k.secret, params))
					r.token = token
					l.mu.Lock()
					l.results[kind.name] = append(l.results[kind.name], r)
					l.mu.Unlock()
				}
			}(kind, i)
		}
	}
	return l
}

func (l *loadRun) finish() {
	close(l.stop)
	l.wg.Wait()
}

// check reports what each kind of request got: read-only ones must all be
// right; the others may fail at most maxLost times in all, and only with a
// balancer error (never an EC2 error from a replica, never a wrong
// answer), and none may reach the backend twice. It returns the
// non-replayable requests that failed.
func (l *loadRun) check(t *testing.T, f *fleet, what string, k keyPair, maxLost int) []fleetResult {
	t.Helper()
	var lost []fleetResult
	for _, kind := range loadKinds {
		rs := l.results[kind.name]
		var bad []string
		for _, r := range rs {
			if r.correct(kind.action, k) {
				continue
			}
			// A request haproxy must not replay that died with its replica:
			// haproxy answers with its own error page (no EC2 code), or
			// closes the client's keep-alive connection without an answer
			// (the client sees EOF; this is what haproxy 2.6 did here).
			if !kind.readOnly && (r.err != nil || r.code == "" && (r.status == 502 || r.status == 503 || r.status == 504)) {
				lost = append(lost, r)
				continue
			}
			bad = append(bad, r.String())
		}
		t.Logf("%s: %s: %d requests, %d wrong", what, kind.name, len(rs), len(bad))
		if len(rs) < 10 {
			t.Errorf("%s: only %d %s requests: the load did not run", what, len(rs), kind.name)
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			t.Errorf("%s: %d of %d %s requests failed or were answered wrongly, e.g.:\n%s", what, len(bad), len(rs), kind.name, strings.Join(bad[:min(len(bad), 10)], "\n"))
		}
	}
	seen := f.backendTokens()
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	executed := 0
	for _, r := range lost {
		if seen[r.token] > 0 {
			executed++
		}
	}
	t.Logf("%s: %d non-replayable requests failed (%d of them had reached the backend before the replica died); %d reached the backend twice", what, len(lost), executed, dups)
	for _, r := range lost {
		t.Logf("%s: not replayed by haproxy: %s", what, r)
	}
	// A request sent while a killed process is being torn down can meet its
	// listener still open (accepted, then reset) or a connection haproxy
	// has not yet seen closed: haproxy cannot tell whether the replica
	// acted on it, so it must not replay it. Those are counted apart; the
	// bound is on requests already in flight when the kill began, and none
	// may be lost once the process is gone (connections are then refused,
	// and haproxy retries those elsewhere).
	var inFlight, teardown, late int
	for _, r := range lost {
		switch {
		case l.dying[0].IsZero() || r.start.Before(l.dying[0]):
			inFlight++
		case r.start.Before(l.dying[1].Add(teardownGrace)):
			teardown++
		default:
			late++
		}
	}
	if teardown > 0 || late > 0 {
		t.Logf("%s: of the lost requests, %d were in flight when the kill began, %d sent during the %v teardown (or within %v after it), %d later", what, inFlight, teardown, l.dying[1].Sub(l.dying[0]).Round(time.Microsecond), teardownGrace, late)
	}
	if inFlight > maxLost {
		t.Errorf("%s: %d non-replayable requests lost; want at most %d", what, inFlight, maxLost)
	}
	if late > 0 {
		t.Errorf("%s: %d non-replayable requests lost after the replica's process was gone; haproxy should have sent them elsewhere", what, late)
	}
	if dups > 0 {
		t.Errorf("%s: %d non-replayable requests reached the backend twice", what, dups)
	}
	return lost
}

// backendTokens counts the backend's receipts of each ClientToken.
func (f *fleet) backendTokens() map[string]int {
	seen := map[string]int{}
	for _, r := range f.backend.Requests() {
		if r.Action != "CreateTags" {
			continue
		}
		q, _ := url.ParseQuery(r.Body)
		if tok := q.Get("ClientToken"); tok != "" {
			seen[tok]++
		}
	}
	return seen
}

// ---------------------------------------------------------------------------
// The tests.
