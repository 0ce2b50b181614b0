package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// signedForm signs a SigV2 POST body for host with the given key pair.
func signedForm(host, access, secret, action string) string {
	return signV2("POST", host, "/", access, secret, map[string]string{"Action": action, "Nonce": fmt.Sprint(time.Now().UnixNano())}).Encode()
}

// SIGHUP reloads configuration and credentials file under load without a
// failed request; a broken configuration is refused and the old one kept;
// SIGTERM, even during a reload's drain, stops accepting at once, lets an
// in-flight request finish and exits 0.
func TestReloadAndDrain(t *testing.T) {
	t.Run("goroutine server", func(t *testing.T) { testReloadAndDrain(t, false) })
	if runtime.GOOS == "linux" {
		t.Run("event loop", func(t *testing.T) { testReloadAndDrain(t, true) })
	}
}

func testReloadAndDrain(t *testing.T, eventLoop bool) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "Action=Slow") {
			<-release
		}
		fmt.Fprint(w, "<ok/>")
	}))
	defer backend.Close()
	defer close(release)

	addr, conf := writeStandaloneConf(t, backend.URL, eventLoop)
	// listen and admin_listen must not change across reloads: keep them.
	data, _ := os.ReadFile(conf)
	pinned := string(data)
	writeConfPinned := func(extra string) { os.WriteFile(conf, []byte(pinned+extra), 0o600) }
	cmd, stderr, exited := startServe(t, conf)

	client := &http.Client{Timeout: 20 * time.Second}
	post := func(access, secret, action string) (int, error) {
		resp, err := client.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, access, secret, action)))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, 10*time.Second, func() bool { code, _ := post("AKA", "SKA", "DescribeRegions"); return code == 200 })

	// Load on several connections throughout the reloads.
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, err := post("AKA", "SKA", "DescribeRegions"); code == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					t.Logf("request failed during reload: %d %v", code, err)
				}
			}
		}()
	}

	if code, _ := post("AKB", "SKB", "DescribeRegions"); code != 401 {
		t.Errorf("unknown key B before reload: %d", code)
	}
	os.WriteFile(filepath.Join(filepath.Dir(conf), "credentials.yaml"), []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n- {access_key: AKB, secret: SKB, user_id: u, project_id: p}\n"), 0o600)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, func() bool { code, _ := post("AKB", "SKB", "DescribeRegions"); return code == 200 })

	writeConfPinned("bogus_key: 1\n") // a broken configuration: refused, old one kept
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if code, _ := post("AKB", "SKB", "DescribeRegions"); code != 200 {
		t.Errorf("after a refused reload: %d", code)
	}
	writeConfPinned("")
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)

	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 20 {
		t.Errorf("during reloads: %d ok, %d failed; want no failure", ok.Load(), failed.Load())
	}
	if !strings.Contains(stderr.String(), "reload refused") || strings.Count(stderr.String(), "configuration reloaded") < 2 {
		t.Errorf("log lacks the reloads:\n%s", stderr.String())
	}

	// A reload while requests are in flight, then SIGTERM: the listener
	// closes at once (not after the old configuration's drain), the
	// requests complete, then exit 0. One says Connection: close, which the
	// event loop hands to the goroutine server (found by a review: SIGTERM
	// cut those, the goroutine server having no listener to wait on).
	inflight := make(chan int, 2)
	go func() { code, _ := post("AKA", "SKA", "Slow"); inflight <- code }()
	go func() {
		code := 0
		if resp, err := postClosing(addr, "Slow"); err == nil {
			code = resp.StatusCode
		}
		inflight <- code
	}()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	// A fresh connection each time: a pooled keep-alive one may still be
	// answered while it drains, which is right.
	fresh := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, 5*time.Second, func() bool { // shutdown_timeout is 10 s
		_, err := fresh.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, "AKA", "SKA", "DescribeRegions")))
		return err != nil
	})
	select {
	case code := <-inflight:
		t.Fatalf("a slow request ended before it was released: %d", code)
	default:
	}
	release <- struct{}{}
	release <- struct{}{}
	for range 2 {
		if code := <-inflight; code != 200 {
			t.Errorf("in-flight request during drain: %d", code)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("did not exit after SIGTERM")
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SIGTERM with no reload before it: requests the event loop handed to the
// goroutine server (Connection: close, as Python's urllib sends it) finish
// before the process exits (found by a review: they were cut, exit 0, the
// goroutine server having no listener, so its shutdown waited for nothing).
func TestSigtermDrainsHandedOffRequests(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the event loop is Linux's")
	}
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		fmt.Fprint(w, "<ok/>")
	}))
	defer backend.Close()
	defer close(release)
	addr, conf := writeStandaloneConf(t, backend.URL, true)
	cmd, stderr, exited := startServe(t, conf)
	waitFor(t, 10*time.Second, func() bool { c, err := net.Dial("tcp", addr); return err == nil && c.Close() == nil })

	answered := make(chan string, 1)
	go func() {
		resp, err := postClosing(addr, "Slow")
		if err != nil {
			answered <- err.Error()
			return
		}
		answered <- resp.Status
	}()
	time.Sleep(500 * time.Millisecond) // at the backend
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	select {
	case got := <-answered:
		t.Fatalf("answered before the backend was released: %s\n%s", got, stderr.String())
	case err := <-exited:
		t.Fatalf("exited (%v) with a request in flight\n%s", err, stderr.String())
	default:
	}
	release <- struct{}{}
	if got := <-answered; !strings.HasPrefix(got, "200") {
		t.Errorf("the in-flight request got %s", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Error("did not exit after SIGTERM")
	}
}

// writeStandaloneConf writes a configuration serving key AKA (secret SKA)
// from a credentials file in standalone mode in front of backend, on free
// ports, with a 10 s shutdown_timeout; it returns the EC2 address and the
// file.
func writeStandaloneConf(t *testing.T, backend string, eventLoop bool) (addr, conf string) {
	t.Helper()
	addr, _, conf = writeStandaloneConfWith(t, backend, fmt.Sprintf("shutdown_timeout: 10s, event_loop: %v", eventLoop))
	return addr, conf
}

// writeStandaloneConfWith is writeStandaloneConf with server settings of
// the caller's (YAML flow mapping entries); admin is admin_listen.
func writeStandaloneConfWith(t *testing.T, backend, server string) (addr, admin, conf string) {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n"), 0o600)
	addr, admin, conf = freePort(t), freePort(t), filepath.Join(dir, "ec2proxy.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nadmin_listen: %q\nidentity: {mode: standalone}\ncredentials: {file: %q}\nroutes: [{path_prefix: /, backend: %q}]\nserver: {%s}\n",
		addr, admin, creds, backend, server)), 0o600)
	return addr, admin, conf
}

// startServe runs `ec2proxy serve -config conf`, with env added to the
// test's environment, killed when the test ends; exited delivers its exit.
func startServe(t *testing.T, conf string, env ...string) (cmd *exec.Cmd, stderr *syncBuffer, exited chan error) {
	t.Helper()
	cmd = exec.Command(binary(t), "serve", "-config", conf)
	cmd.Env = append(os.Environ(), env...)
	stderr = new(syncBuffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, stderr, exited
}

// postClosing posts action signed with AKA's secret, saying Connection:
// close (which the event loop hands to the goroutine server), and reads
// the answer's body.
func postClosing(addr, action string) (*http.Response, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(signedForm(addr, "AKA", "SKA", action)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Close = true
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}
