//go:build linux

package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A header name with a blank inside passes fasthttp and matches no
// spoofable prefix, and Python's parser (eventlet under nova) stops reading
// headers at it: the loop wrote Content-Length last, so such a backend read
// the signed body as a second request, with identity headers the client
// chose (found by a review). Every front end refuses the name, and nothing
// reaches the backend.
func TestFrontEndsRefuseNonTokenHeaderNames(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, answerWith("<ok/>"))
			s, form := warmServer(t, backend.addr)
			addr := startMode(t, s, mode)
			for name, message := range map[string]string{
				"X Pad":    fmt.Sprintf("The header name %q is not a valid token", "X Pad"),
				"X(Roles)": "", // fasthttp refuses this one itself
			} {
				got, _ := rawTalk(t, addr, 500*time.Millisecond, modesForm(form, name+": 1"))
				if lines := statusLines(got); len(lines) != 1 || !strings.Contains(lines[0], "400") ||
					!strings.Contains(got, "InvalidRequest") || !strings.Contains(got, message) {
					t.Errorf("header %q: got %q; want one 400 InvalidRequest saying %q", name, got, message)
				}
			}
			if got := backend.received(); len(got) != 0 {
				t.Errorf("the backend received %d requests: %q", len(got), got)
			}
			// The same request without it is forwarded.
			if got, _ := rawTalk(t, addr, 500*time.Millisecond, modesForm(form)); !strings.Contains(got, "200 OK") {
				t.Errorf("control: %q", got)
			}
		})
	}
}

// The loop writes the framing and identity before the client's headers.
func TestLoopBackendRequestOrder(t *testing.T) {
	backend := startScriptedBackend(t, answerWith("<ok/>"))
	s, form := warmServer(t, backend.addr)
	addr := startMode(t, s, "epoll")
	if got, _ := rawTalk(t, addr, 500*time.Millisecond, modesForm(form, "X-Client: 1")); !strings.Contains(got, "200 OK") {
		t.Fatalf("got %q", got)
	}
	reqs := backend.received()
	if len(reqs) != 1 {
		t.Fatalf("backend received %d requests", len(reqs))
	}
	head := reqs[0]
	cl, ident, client := strings.Index(head, "Content-Length:"), strings.Index(head, "X-Identity-Status:"), strings.Index(head, "X-Client:")
	if cl < 0 || ident < 0 || client < 0 || !(cl < ident && ident < client) {
		t.Errorf("order: Content-Length at %d, X-Identity-Status at %d, X-Client at %d; want them in that order:\n%s", cl, ident, client, head)
	}
}
