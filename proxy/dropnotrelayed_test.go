package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The backend's Connection: close is kept (the client's connection closes
// after the answer, as before), also with another token beside close,
// whose header dropNotRelayed deletes (found by a review: deleting it
// cleared fasthttp's close flag).
func TestDropNotRelayedKeepsConnectionClose(t *testing.T) {
	for _, backend := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\nContent-Length: 5\r\n\r\n<ok/>",
		"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nContent-Length: 5\r\n\r\n<ok/>",
		"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: X-Secret, close\r\nX-Secret: s\r\nContent-Length: 5\r\n\r\n<ok/>",
	} {
		for _, norm := range []bool{false, true} {
			var resp fasthttp.Response
			if norm {
				resp.Header.DisableNormalizing()
			}
			if err := resp.Read(bufio.NewReader(strings.NewReader(backend))); err != nil {
				t.Fatal(err)
			}
			if !resp.ConnectionClose() {
				t.Fatalf("parsed without close: %q", backend)
			}
			dropNotRelayed(&resp.Header, nil)
			if !resp.ConnectionClose() {
				t.Errorf("disableNormalizing=%v: Connection: close lost after dropNotRelayed for %q; now:\n%s", norm, backend, resp.Header.String())
			}
		}
	}
}
