package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// With server.shutdown_delay, SIGTERM first takes the replica out of a
// balancer's pool without closing a connection under anyone: /readyz
// answers 503, the listener still accepts, and every answer (forwarded or
// refused, on a keep-alive connection or a new one) says Connection: close.
// After the delay it drains and exits 0. Without it, closing idle
// keep-alive connections at once raced requests haproxy was sending on
// them, and a rolling restart lost non-replayable ones (TestFleetBehindHAProxy).
func TestShutdownDelay(t *testing.T) {
	t.Run("goroutine server", func(t *testing.T) { testShutdownDelay(t, false) })
	if runtime.GOOS == "linux" {
		t.Run("event loop", func(t *testing.T) { testShutdownDelay(t, true) })
	}
}

func testShutdownDelay(t *testing.T, eventLoop bool) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<ok/>")
	}))
	defer backend.Close()
	const delay = 3 * time.Second
	addr, admin, conf := writeStandaloneConfWith(t, backend.URL, fmt.Sprintf("shutdown_timeout: 10s, shutdown_delay: %v, event_loop: %v", delay, eventLoop))
	cmd, stderr, exited := startServe(t, conf)

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(url string) (*http.Response, string, error) {
		resp, err := client.Get(url)
		if err != nil {
			return nil, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body), nil
	}
	post := func(secret string) (*http.Response, error) {
		resp, err := client.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, "AKA", secret, "DescribeRegions")))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	waitFor(t, 10*time.Second, func() bool { resp, err := post("SKA"); return err == nil && resp.StatusCode == 200 })
	if resp, _, err := get("http://" + admin + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/readyz before SIGTERM: %v %v", resp, err)
	}
	// Keep-alive connections to both listeners, open when the signal comes.
	for _, secret := range []string{"SKA", "SKA", "wrong"} {
		if resp, err := post(secret); err != nil || resp.Close {
			t.Fatalf("before SIGTERM: %v, connection closing %v", err, resp != nil && resp.Close)
		}
	}

	signalled := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, 2*time.Second, func() bool {
		resp, _, err := get("http://" + admin + "/readyz")
		return err == nil && resp.StatusCode == 503
	})
	resp, body, err := get("http://" + admin + "/readyz")
	if err != nil || resp.StatusCode != 503 || !strings.Contains(body, "shutdown_delay") {
		t.Errorf("/readyz during the delay: %v %q %v; want 503 naming server.shutdown_delay", resp, body, err)
	}
	// Forwarded and refused answers alike close their connection; the
	// client's next request then opens a new one, which is accepted.
	for i, c := range []struct {
		secret string
		status int
	}{{"SKA", 200}, {"wrong", 403}, {"SKA", 200}, {"SKA", 200}} {
		resp, err := post(c.secret)
		if err != nil {
			t.Fatalf("request %d during the delay: %v", i, err)
		}
		if resp.StatusCode != c.status || !resp.Close {
			t.Errorf("request %d during the delay: %d, Connection: close %v; want %d, closing", i, resp.StatusCode, resp.Close, c.status)
		}
	}
	if time.Since(signalled) >= delay {
		t.Fatalf("the checks took longer than the delay (%v): the test proves nothing", delay)
	}
	select {
	case err := <-exited:
		took := time.Since(signalled)
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
		if took < delay {
			t.Errorf("exited %v after SIGTERM; want after server.shutdown_delay (%v)", took, delay)
		}
	case <-time.After(delay + 10*time.Second):
		t.Fatalf("did not exit after SIGTERM and the delay\n%s", stderr.String())
	}
	if _, err := post("SKA"); err == nil {
		t.Error("the listener still answers after the process exited")
	}
	if log := stderr.String(); !strings.Contains(log, "serving on for server.shutdown_delay") {
		t.Errorf("log does not say the delay began:\n%s", log)
	}
}

// A second SIGTERM ends server.shutdown_delay at once: an operator who
// wants the process gone need not wait for it (nor reach for SIGKILL,
// which would cut in-flight requests).
func TestShutdownDelaySecondSignal(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<ok/>") }))
	defer backend.Close()
	addr, _, conf := writeStandaloneConfWith(t, backend.URL, "shutdown_delay: 5m")
	cmd, stderr, exited := startServe(t, conf)
	client := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, 10*time.Second, func() bool {
		resp, err := client.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, "AKA", "SKA", "DescribeRegions")))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(stderr.String(), "serving on for server.shutdown_delay") })
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after the second SIGTERM: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "second signal") {
			t.Errorf("log does not say the delay was cut short:\n%s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("a second SIGTERM did not end the 5m delay\n%s", stderr.String())
	}
}

// A SIGTERM sent as soon as the listener accepts (a service manager
// stopping a replica that has just started) stops it cleanly: exit 0 after
// the drain. The listener accepted before the signal handler was installed,
// and such a SIGTERM killed the process (found when a test did just that).
func TestSIGTERMRightAfterStart(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<ok/>") }))
	defer backend.Close()
	for i := range 5 {
		addr, _, conf := writeStandaloneConfWith(t, backend.URL, "shutdown_timeout: 10s")
		cmd, stderr, exited := startServe(t, conf)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("start %d: not accepting within 10s\n%s", i, stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("start %d: SIGTERM right after the listener accepted: %v; want exit 0\n%s", i, err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("start %d: did not exit after SIGTERM", i)
		}
	}
}
