//go:build linux

package proxy

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ec2proxy/ec2proxy/configs"
)

// A backend whose connects hang fails with 504 GatewayTimeout after
// backend.dial_timeout, in every front end (as nginx's proxy_connect_timeout
// does); the event loop's connects had no deadline but the request's
// backend.timeout (found by a review: 60 s instead of 3 s by default).
func TestFrontEndsDialTimeout(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			addr := fullListener(t, "127.0.0.1", "0")
			s, form := warmServer(t, addr)
			s.cfg.Backend.DialTimeout, s.cfg.Backend.Timeout = 500*time.Millisecond, 5*time.Second
			rt, err := newRoute(configs.Route{PathPrefix: "/", Backend: "http://" + addr}, &s.cfg.Backend, false, s.m.connectFailed)
			if err != nil {
				t.Fatal(err)
			}
			s.routes[0] = rt
			proxy := startMode(t, s, mode)
			resp, _, took := askOnce(t, proxy, modesForm(form))
			if resp.StatusCode != 504 || took > 1500*time.Millisecond {
				t.Errorf("got %d after %v; want 504 after about 500ms", resp.StatusCode, took)
			}
			if n := counterValue(s.m.backendConnects.WithLabelValues(addr)); n != 1 {
				t.Errorf("ec2proxy_backend_connect_failures_total{backend=%q} = %v; want 1", addr, n)
			}
		})
	}
}

// The goroutine pipeline counts a failed dial as the loop counts a failed
// connect: the backend's or the network's doing, not a failed name lookup
// or a local shortage.
func TestBackendRefused(t *testing.T) {
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{dial(syscall.ECONNREFUSED), true},
		{dial(syscall.EHOSTUNREACH), true},
		{dial(syscall.ENETUNREACH), true},
		{dial(syscall.ETIMEDOUT), true},
		{fasthttp.ErrDialTimeout, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, true}, // fasthttp.DialTimeout's, wrapped
		{syscall.ECONNREFUSED, true},                                              // the event loop's connect
		{syscall.EAGAIN, false},                                                   // no local port left
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nova", IsNotFound: true}}, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "i/o timeout", Name: "nova", IsTimeout: true}}, false},
		{dial(syscall.EMFILE), false},
		{dial(syscall.EADDRNOTAVAIL), false},
	} {
		if got := backendRefused(tc.err); got != tc.want {
			t.Errorf("backendRefused(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
