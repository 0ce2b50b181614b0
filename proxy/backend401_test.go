//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// rejectionRecorder is a warm identity source that records what a
// backend's 401 told it.
type rejectionRecorder struct {
	cachedFake
	mu       sync.Mutex
	rejected []string // access keys
	ids      []*keystoneclient.Identity
}

func (r *rejectionRecorder) BackendRejected(accessKey string, id *keystoneclient.Identity) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejected = append(r.rejected, accessKey)
	r.ids = append(r.ids, id)
	return true
}

// Replaced records as BackendRejected does, and says Keystone still
// accepts the token: nothing to send again.
func (r *rejectionRecorder) Replaced(_ context.Context, accessKey string, id *keystoneclient.Identity) bool {
	r.BackendRejected(accessKey, id)
	return false
}

// A backend's 401 (keystonemiddleware's answer to a revoked token) is told
// to the identity source once, with the access key and the identity sent,
// in every front end and whether the loop relays the answer as bytes
// (plain, with a Date, marked by keystonemiddleware: Replaced) or renders
// it (chunked, unmarked: BackendRejected); other statuses are not.
func TestFrontEndsBackend401ReportsTheToken(t *testing.T) {
	const refusal = `{"error":{"code":401,"title":"Unauthorized"}}`
	answers := map[string]string{
		"plain 401":   fmt.Sprintf("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Keystone uri=\"http://ks\"\r\nContent-Type: application/json\r\nDate: %s\r\nContent-Length: %d\r\n\r\n%s", time.Now().UTC().Format(http.TimeFormat), len(refusal), refusal),
		"chunked 401": fmt.Sprintf("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(refusal), refusal),
		"403":         "HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\n<no/>",
		"200":         "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\n<ok/>",
	}
	for _, mode := range frontEnds {
		for name, answer := range answers {
			t.Run(mode+"/"+name, func(t *testing.T) {
				backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
					fmt.Fprint(c, answer)
					return true
				})
				s, form := warmServer(t, backend.addr)
				recorder := &rejectionRecorder{}
				recorder.id = s.identity.(*cachedFake).id
				s.identity = recorder
				addr := startMode(t, s, mode)
				resp, _, _ := askOnce(t, addr, modesForm(form))
				if want := answer[9:12]; !strings.HasPrefix(resp.Status, want) {
					t.Fatalf("got %s, want the backend's %s relayed", resp.Status, want)
				}
				recorder.mu.Lock()
				defer recorder.mu.Unlock()
				if !strings.Contains(name, "401") {
					if len(recorder.rejected) != 0 {
						t.Errorf("a %s answer was reported as a refused token", name)
					}
					return
				}
				if len(recorder.rejected) != 1 || recorder.rejected[0] != testAccess || recorder.ids[0] != recorder.id {
					t.Errorf("reported %q with %d identities, want %s once with the identity sent", recorder.rejected, len(recorder.ids), testAccess)
				}
			})
		}
	}
}
