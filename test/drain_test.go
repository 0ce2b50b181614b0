package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A client that connects during server.shutdown_delay and is still sending
// its request body when the delay ends must get its answer: the request is
// in flight (the goroutine server waits for it); the event loop's drain
// closed the connection under it.
func TestStopKeepsPartlyReceivedRequest(t *testing.T) {
	for _, eventLoop := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_loop=%v", eventLoop), func(t *testing.T) {
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<ok/>") }))
			defer backend.Close()
			addr, _, conf := writeStandaloneConfWith(t, backend.URL, fmt.Sprintf("shutdown_timeout: 10s, shutdown_delay: 1s, event_loop: %v", eventLoop))
			cmd, stderr, exited := startServe(t, conf)
			waitFor(t, 10*time.Second, func() bool { c, err := net.Dial("tcp", addr); return err == nil && c.Close() == nil })

			cmd.Process.Signal(syscall.SIGTERM)
			waitFor(t, 5*time.Second, func() bool { return strings.Contains(stderr.String(), "serving on for server.shutdown_delay") })
			// Accepted during the delay: head and half the body now.
			body := signedForm(addr, "AKA", "SKA", "DescribeRegions")
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:len(body)/2])
			time.Sleep(1500 * time.Millisecond) // the delay ends: Stop
			if _, err := io.WriteString(conn, body[len(body)/2:]); err != nil {
				t.Fatalf("writing the rest of the body after the delay: %v\n%s", err, stderr.String())
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("request in flight when the delay ended got no answer: %v\n%s", err, stderr.String())
			}
			if resp.StatusCode != 200 {
				t.Errorf("status %d, want 200", resp.StatusCode)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("exit: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("did not exit")
			}
		})
	}
}

// SIGTERM (shutdown_delay 0) while a keep-alive request is at the
// backend: its answer must say Connection: close, for the connection is
// closed right after it (the goroutine server says so: CloseOnShutdown),
// and /readyz answers 503 while the request drains (it answered 200 with
// the EC2 listener closed).
func TestAnswerDuringDrainSaysClose(t *testing.T) {
	for _, eventLoop := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_loop=%v", eventLoop), func(t *testing.T) {
			release := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.FormValue("Action") == "Slow" {
					<-release
				}
				fmt.Fprint(w, "<ok/>")
			}))
			defer backend.Close()
			addr, admin, conf := writeStandaloneConfWith(t, backend.URL, fmt.Sprintf("shutdown_timeout: 10s, event_loop: %v", eventLoop))
			cmd, stderr, exited := startServe(t, conf)
			client := &http.Client{Timeout: 10 * time.Second}
			post := func(action string) (*http.Response, error) {
				resp, err := client.Post("http://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, "AKA", "SKA", action)))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				return resp, err
			}
			waitFor(t, 10*time.Second, func() bool { resp, err := post("DescribeRegions"); return err == nil && resp.StatusCode == 200 })
			got := make(chan *http.Response, 1)
			go func() { resp, _ := post("Slow"); got <- resp }()
			time.Sleep(500 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGTERM)
			time.Sleep(300 * time.Millisecond)
			if ready, err := client.Get("http://" + admin + "/readyz"); err != nil || ready.StatusCode != 503 {
				t.Errorf("/readyz while draining: %v %v; want 503", ready, err)
			} else {
				ready.Body.Close()
			}
			close(release)
			resp := <-got
			if resp == nil || resp.StatusCode != 200 || !resp.Close {
				t.Errorf("answer during the drain: %v; want 200 with Connection: close\n%s", resp, stderr.String())
			}
			<-exited
		})
	}
}
