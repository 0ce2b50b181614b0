package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const plainAnswer = "HTTP/1.1 200 OK\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: 5\r\nDate: Thu, 26 Nov 2026 04:00:00 GMT\r\n\r\nhello"

func TestScanAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     answerScan
		status   int
		end      int
	}{
		{"plain", plainAnswer, answerPlain, 200, len(plainAnswer)},
		{"pipelined", plainAnswer + "HTTP/1.1 200 OK\r\n", answerPlain, 200, len(plainAnswer)},
		{"error status", strings.Replace(plainAnswer, "200 OK", "400 Bad Request", 1), answerPlain, 400, len(plainAnswer) + 9},
		{"no reason", strings.Replace(plainAnswer, "200 OK", "200", 1), answerPlain, 200, len(plainAnswer) - 3},
		{"lower-case names", "HTTP/1.1 200 OK" + strings.ToLower(plainAnswer[15:len(plainAnswer)-5]) + "hello", answerPlain, 200, len(plainAnswer)},
		{"head on its way", plainAnswer[:30], answerIncomplete, 0, 0},
		{"body on its way", plainAnswer[:len(plainAnswer)-2], answerIncomplete, 0, 0},
		{"huge head", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 17<<10), answerOther, 0, 0},
		{"chunked", strings.Replace(plainAnswer, "Content-Length: 5", "Transfer-Encoding: chunked", 1), answerOther, 0, 0},
		{"connection", strings.Replace(plainAnswer, "Date:", "Connection: close\r\nDate:", 1), answerOther, 0, 0},
		{"no length", strings.Replace(plainAnswer, "Content-Length: 5\r\n", "", 1), answerOther, 0, 0},
		{"two lengths", strings.Replace(plainAnswer, "Date:", "Content-Length: 5\r\nDate:", 1), answerOther, 0, 0},
		{"signed length", strings.Replace(plainAnswer, "Length: 5", "Length: +5", 1), answerOther, 0, 0},
		{"length, tab", strings.Replace(plainAnswer, "Length: 5", "Length:\t5\t", 1), answerPlain, 200, len(plainAnswer) + 1},
		// fasthttp refuses these (a review: TrimSpace took them for blanks)
		{"length, no-break space", strings.Replace(plainAnswer, "Length: 5", "Length: 5\u00a0", 1), answerOther, 0, 0},
		{"length, next line", strings.Replace(plainAnswer, "Length: 5", "Length: 5\u0085", 1), answerOther, 0, 0},
		{"no content type", strings.Replace(plainAnswer, "Content-Type: text/xml;charset=UTF-8\r\n", "", 1), answerOther, 0, 0},
		{"no date", strings.Replace(plainAnswer, "\r\nDate: Thu, 26 Nov 2026 04:00:00 GMT", "", 1), answerOther, 0, 0},
		{"HTTP/1.0", strings.Replace(plainAnswer, "HTTP/1.1", "HTTP/1.0", 1), answerOther, 0, 0},
		{"no content", strings.Replace(plainAnswer, "200 OK", "204 No Content", 1), answerOther, 0, 0},
		{"not modified", strings.Replace(plainAnswer, "200 OK", "304 Not Modified", 1), answerOther, 0, 0},
		{"informational", strings.Replace(plainAnswer, "200 OK", "100 Continue", 1), answerOther, 0, 0},
		{"bad status", strings.Replace(plainAnswer, "200 OK", "2x0 OK", 1), answerOther, 0, 0},
		{"status run-on", strings.Replace(plainAnswer, "200 OK", "2000 OK", 1), answerOther, 0, 0},
		{"folded line", strings.Replace(plainAnswer, "Date:", " folded\r\nDate:", 1), answerOther, 0, 0},
		{"bare LF", strings.Replace(plainAnswer, "\r\nDate:", "\nX: y\r\nDate:", 1), answerOther, 0, 0},
		{"bare CR", strings.Replace(plainAnswer, "Date:", "X: a\rb\r\nDate:", 1), answerOther, 0, 0},
		{"control character", strings.Replace(plainAnswer, "Date:", "X: a\x1eb\r\nDate:", 1), answerOther, 0, 0},
		{"space in name", strings.Replace(plainAnswer, "Date:", "X Y: a\r\nDate:", 1), answerOther, 0, 0},
		{"no colon", strings.Replace(plainAnswer, "Date:", "Nonsense\r\nDate:", 1), answerOther, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, got := scanAnswer([]byte(tc.in))
			if got != tc.want || got == answerPlain && (head.status != tc.status || head.end != tc.end) {
				t.Fatalf("scanAnswer = %v %+v, want %v status %d end %d", got, head, tc.want, tc.status, tc.end)
			}
		})
	}
}

// The bytes relayed must be the answer the fasthttp path gives the client:
// forwarded()'s header changes applied to the parsed answer, re-written;
// closing (server.shutdown_delay) as the fasthttp path's SetConnectionClose.
func TestAppendRelayedMatchesFasthttpPath(t *testing.T) {
	for _, closing := range []bool{false, true} {
		t.Run(fmt.Sprintf("closing=%v", closing), func(t *testing.T) { testAppendRelayedMatchesFasthttpPath(t, closing) })
	}
}

func testAppendRelayedMatchesFasthttpPath(t *testing.T, closing bool) {
	backend := "HTTP/1.1 201 Created\r\nContent-Type: text/xml\r\nDate: Thu, 26 Nov 2026 04:00:00 GMT\r\nKeep-Alive: timeout=5\r\nx-request-id: req-from-backend\r\n" +
		"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\nTrailer: X\r\nProxy-Authenticate: Basic\r\nTe: trailers\r\n" +
		"Proxy-Connection: keep-alive\r\nX-Compute-Request-Id: req-nova\r\nContent-Length: 12\r\n\r\n<ok>yes</ok>"
	head, scan := scanAnswer([]byte(backend))
	if scan != answerPlain {
		t.Fatalf("scanAnswer = %v, want plain", scan)
	}
	id := []byte("req-ours")
	relayed := appendRelayed(nil, []byte(backend)[:head.end], id, closing)

	var viaFasthttp fasthttp.Response
	if err := viaFasthttp.Read(bufio.NewReader(strings.NewReader(backend))); err != nil {
		t.Fatal(err)
	}
	dropNotRelayed(&viaFasthttp.Header, nil)
	viaFasthttp.Header.SetServer(serverName) // the front end's fasthttp.Server does, the backend naming none
	viaFasthttp.Header.SetBytesV(headerRequestID, id)
	if closing {
		viaFasthttp.SetConnectionClose()
	}
	var want, got fasthttp.Response
	if err := want.Read(bufio.NewReader(strings.NewReader(viaFasthttp.String()))); err != nil {
		t.Fatal(err)
	}
	if err := got.Read(bufio.NewReader(bytes.NewReader(relayed))); err != nil {
		t.Fatalf("relayed answer does not parse: %v\n%s", err, relayed)
	}
	if got.StatusCode() != want.StatusCode() || !bytes.Equal(got.Body(), want.Body()) {
		t.Fatalf("relayed %d %q, fasthttp path %d %q", got.StatusCode(), got.Body(), want.StatusCode(), want.Body())
	}
	headers := func(r *fasthttp.Response) map[string][]string {
		m := map[string][]string{}
		for k, v := range r.Header.All() {
			m[strings.ToLower(string(k))] = append(m[strings.ToLower(string(k))], string(v))
		}
		return m
	}
	g, w := headers(&got), headers(&want)
	if len(g) != len(w) {
		t.Errorf("relayed headers %v, fasthttp path %v", g, w)
	}
	for k, wv := range w {
		if k == "date" { // fasthttp writes its own clock's; the relay keeps the backend's
			continue
		}
		if strings.Join(g[k], "|") != strings.Join(wv, "|") {
			t.Errorf("header %s: relayed %q, fasthttp path %q", k, g[k], wv)
		}
	}
	if got.ConnectionClose() != closing {
		t.Errorf("relayed answer closes the connection: %v, want %v\n%s", got.ConnectionClose(), closing, relayed)
	}
	if g["x-request-id"][0] != "req-ours" || len(g["date"]) != 1 || g["keep-alive"] != nil || g["upgrade"] != nil {
		t.Errorf("relayed headers %v", g)
	}
}

// Whatever a backend sends, scanning neither panics nor relays what
// fasthttp would not read back as one answer of the same status and body.
func FuzzScanAnswer(f *testing.F) {
	f.Add([]byte(plainAnswer))
	f.Add([]byte(plainAnswer + plainAnswer))
	f.Add([]byte(strings.Replace(plainAnswer, "Content-Length: 5", "Transfer-Encoding: chunked", 1)))
	f.Fuzz(func(t *testing.T, in []byte) {
		head, scan := scanAnswer(in)
		if scan != answerPlain {
			return
		}
		closing := len(in)%2 == 1
		out := appendRelayed(nil, in[:head.end], []byte("req-1"), closing)
		var r fasthttp.Response
		br := bufio.NewReader(bytes.NewReader(out))
		if err := r.Read(br); err != nil {
			t.Fatalf("relayed answer does not parse: %v\n%q", err, out)
		}
		if r.StatusCode() != head.status || br.Buffered() != 0 || string(r.Header.Peek("X-Request-Id")) != "req-1" || r.ConnectionClose() != closing {
			t.Fatalf("relayed %d (%d bytes left), scanned %d\n%q", r.StatusCode(), br.Buffered(), head.status, out)
		}
	})
}
