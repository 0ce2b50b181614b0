package keystoneclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// herdKeys is how many cold access keys TestRealColdKeysHerd asks for at
// once. Against the two-worker Keystone of keystone-up.sh, 1000 at once
// with MaxConcurrent unbounded overflowed its listen queue: 376 of 1000
// failed after the 5 s timeout; bounded (the default 16), none, in 6-8 s.
// 200 keep the test short, and the Keystone other packages' tests share
// (CI runs them in parallel) busy for only a few seconds.
const herdKeys = 200

// Against the real Keystone of test/scripts/keystone-up.sh: herdKeys access
// keys nobody asked for yet, asked for at once, as after a start or a
// flushed cache, with the shipped defaults (Timeout 5 s, MaxConcurrent 16).
// Each must get its identity: cold keys wait for a free ec2tokens call
// instead of overflowing Keystone's listen queue. The test creates its own
// EC2 credentials (for the demo user) and deletes them afterwards.
func TestRealColdKeysHerd(t *testing.T) {
	if testing.Short() {
		t.Skip("loads Keystone for several seconds")
	}
	ks := testenv.KeystoneEnv(t)
	admin := herdAdminLogin(t, ks)
	userID, projectID := ks.Var(t, "DEMO_USER_ID"), ks.Var(t, "DEMO_PROJECT_ID")
	start := time.Now()
	creds := admin.createEC2(t, herdKeys, userID, projectID)
	t.Logf("created %d EC2 credentials in %v", len(creds), time.Since(start).Round(time.Millisecond))

	c, err := New(Config{
		AuthURL: ks.URL, Username: ks.ServiceUser, Password: ks.ServicePassword,
		UserDomainName: ks.ServiceDomain, ProjectName: ks.ServiceProject, ProjectDomainName: ks.ServiceDomain,
		TokenMargin: 5 * time.Minute, // Timeout and MaxConcurrent: the defaults
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil { // the service token is not what is tested
		t.Fatalf("Ready: %v", err)
	}
	// Before the credentials are deleted: no connection left open.
	t.Cleanup(c.http.CloseIdleConnections)

	type result struct {
		took time.Duration
		id   *Identity
		err  error
	}
	results := make([]result, len(creds))
	var wg sync.WaitGroup
	start = time.Now()
	for i, cr := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			id, err := c.Identity(ctx, cr.access, sigv2.NewKey([]byte(cr.secret)))
			results[i] = result{time.Since(s), id, err}
		}()
	}
	wg.Wait()
	wall := time.Since(start)

	lat := make([]time.Duration, len(results))
	failures := map[string]int{} // by message and how long the call took
	failed := 0
	for i, r := range results {
		lat[i] = r.took
		switch {
		case r.err != nil:
			failed++
			failures[fmt.Sprintf("after %.1fs: %v", r.took.Seconds(), r.err)]++
		case r.id.UserID != userID || r.id.ProjectID != projectID:
			t.Errorf("%s: identity %+v; want user %s on project %s", creds[i].access, r.id, userID, projectID)
		}
	}
	slices.Sort(lat)
	t.Logf("%d cold keys at once: wall %v, p50 %v, max %v", len(creds), wall.Round(time.Millisecond),
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if failed > 0 {
		// "Client.Timeout exceeded while awaiting headers" after exactly
		// the timeout is a request no Keystone worker read in time.
		msgs := make([]string, 0, len(failures))
		for m, n := range failures {
			msgs = append(msgs, fmt.Sprintf("%d x %s", n, m))
		}
		slices.Sort(msgs)
		t.Errorf("%d of %d cold keys failed:\n  %s", failed, len(creds), strings.Join(msgs, "\n  "))
	}
}

// herdAdmin calls Keystone's REST API as the bootstrap admin.
type herdAdmin struct {
	url, token string
	http       *http.Client
}

type herdCred struct{ id, access, secret string }

func herdAdminLogin(t *testing.T, ks testenv.Keystone) *herdAdmin {
	t.Helper()
	a := &herdAdmin{
		url: strings.TrimSuffix(strings.TrimRight(ks.URL, "/"), "/v3") + "/v3",
		// A new connection per call: the admin's calls must not hold a
		// single-threaded Keystone worker between them.
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	var body struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string            `json:"name"`
						Password string            `json:"password"`
						Domain   map[string]string `json:"domain"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project map[string]string `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	id := &body.Auth.Identity
	id.Methods = []string{"password"}
	id.Password.User.Name = ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER")
	id.Password.User.Password = ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD")
	id.Password.User.Domain = map[string]string{"id": ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID")}
	body.Auth.Scope.Project = map[string]string{"id": ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT_ID")}
	resp, _, err := a.do(http.MethodPost, "/auth/tokens?nocatalog", body, http.StatusCreated)
	if err != nil {
		t.Fatalf("admin login: %v", err)
	}
	if a.token = resp.Header.Get("X-Subject-Token"); a.token == "" {
		t.Fatal("admin login: no X-Subject-Token")
	}
	return a
}

// do sends in as JSON and returns the answer, an error unless its status
// is want.
func (a *herdAdmin) do(method, path string, in any, want int) (*http.Response, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("X-Auth-Token", a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != want {
		err = fmt.Errorf("%s %s: %d %s; want %d", method, path, resp.StatusCode, data, want)
	}
	return resp, data, err
}

// herdWorkers is how many admin calls run at once: about what two
// Keystone workers absorb.
const herdWorkers = 4

// createEC2 creates n EC2 credentials of userID on projectID, with access
// keys unique to this run, and deletes them when the test ends (also the
// ones made before a failure).
func (a *herdAdmin) createEC2(t *testing.T, n int, userID, projectID string) []herdCred {
	t.Helper()
	run := make([]byte, 6)
	if _, err := rand.Read(run); err != nil {
		t.Fatal(err)
	}
	prefix := "herd" + hex.EncodeToString(run)
	creds := make([]herdCred, n)
	for i := range creds {
		cr := &creds[i]
		cr.access = fmt.Sprintf("%s%04d", prefix, i)
		cr.secret = cr.access + "-secret"
		// Keystone names an EC2 credential by its access key, so a
		// credential whose creation was cut short can still be deleted.
		sum := sha256.Sum256([]byte(cr.access))
		cr.id = hex.EncodeToString(sum[:])
	}
	t.Cleanup(func() {
		start := time.Now()
		err := herdParallel(creds, func(cr *herdCred) error {
			return a.retry(http.MethodDelete, "/credentials/"+cr.id, nil, http.StatusNoContent, http.StatusNotFound)
		})
		if err != nil { // litter in a test Keystone, not what this tests
			t.Logf("some of the test's EC2 credentials (access keys %s*) are left: %v", prefix, err)
		}
		t.Logf("deleted the %d EC2 credentials in %v", n, time.Since(start).Round(time.Millisecond))
	})
	type credential struct {
		Type      string `json:"type"`
		UserID    string `json:"user_id"`
		ProjectID string `json:"project_id"`
		Blob      string `json:"blob"`
	}
	err := herdParallel(creds, func(cr *herdCred) error {
		blob, _ := json.Marshal(map[string]string{"access": cr.access, "secret": cr.secret})
		in := map[string]credential{"credential": {Type: "ec2", UserID: userID, ProjectID: projectID, Blob: string(blob)}}
		return a.retry(http.MethodPost, "/credentials", in, http.StatusCreated, http.StatusConflict)
	})
	if err != nil {
		t.Fatalf("creating %d EC2 credentials: %v", n, err)
	}
	return creds
}

// retry calls do until it answers want, at most three times: Keystone on
// sqlite answers 500 ("database is locked") to some concurrent writes.
// againOK is also success after a failed attempt (which may have been
// done: 409 for a repeated POST, 404 for a repeated DELETE).
func (a *herdAdmin) retry(method, path string, in any, want, againOK int) error {
	var err error
	for attempt := range 6 { // 3 s in all: a busy test Keystone drops a connection now and then
		if attempt > 0 {
			time.Sleep(time.Duration(1<<attempt) * 50 * time.Millisecond)
		}
		var resp *http.Response
		resp, _, err = a.do(method, path, in, want)
		switch {
		case err == nil:
			return nil
		case resp != nil && attempt > 0 && resp.StatusCode == againOK:
			return nil
		case resp != nil && resp.StatusCode < 500:
			return err
		}
	}
	return err
}

// herdParallel calls f on every credential, herdWorkers at a time, and returns
// the first errors (at most 3) joined.
func herdParallel(creds []herdCred, f func(*herdCred) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan *herdCred)
	for range herdWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cr := range next {
				if err := f(cr); err != nil {
					mu.Lock()
					if len(errs) < 3 {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range creds {
		next <- &creds[i]
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
