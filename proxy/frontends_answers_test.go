//go:build linux

package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Backend answers the event loop parsed from what it had read so far
// (found by a review): a body without Content-Length or chunking (it ends
// when the backend closes) was cut at the first read and answered as
// empty; a malformed answer, or one over the size limit, waited for
// backend.timeout and answered 504 instead of 502. Every front end now
// gives the same answer, at once.
func TestFrontEndsBackendAnswers(t *testing.T) {
	body := strings.Repeat("0123456789", 20000) // 200 KB, written in pieces
	closeDelimited := func(c net.Conn) bool {
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n")
		for i := 0; i < len(body); i += 10000 {
			time.Sleep(2 * time.Millisecond)
			c.Write([]byte(body[i : i+10000]))
		}
		return false // the close ends the body
	}
	write := func(s string) func(net.Conn) bool {
		return func(c net.Conn) bool { fmt.Fprint(c, s); return true }
	}
	cases := []struct {
		name     string
		answer   func(net.Conn) bool
		status   string
		wantBody string
	}{
		{"close-delimited", closeDelimited, "200 OK", body},
		{"HTTP/1.0 close-delimited", func(c net.Conn) bool {
			fmt.Fprint(c, "HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<ok/>")
			return false
		}, "200 OK", "<ok/>"},
		{"two Content-Lengths", write("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\nContent-Length: 3\r\n\r\n<ok/>"), "502", ""},
		{"two-digit status", write("HTTP/1.1 20 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\n<ok/>"), "502", ""},
		{"not HTTP", write("HELLO\r\n\r\n"), "502", ""},
		{"over the size limit", write("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 70000000\r\n\r\n<ok/>"), "502", ""},
	}
	for _, mode := range frontEnds {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool { return tc.answer(c) })
				s, form := warmServer(t, backend.addr)
				s.routes[0].timeout = 5 * time.Second
				s.routes[0].client.ReadTimeout = 5 * time.Second
				addr := startMode(t, s, mode)
				resp, gotBody, took := askOnce(t, addr, modesForm(form))
				switch {
				case !strings.HasPrefix(resp.Status, tc.status):
					t.Errorf("got %s; want %s", resp.Status, tc.status)
				case tc.wantBody != "" && string(gotBody) != tc.wantBody:
					t.Errorf("body: %d bytes; want %d", len(gotBody), len(tc.wantBody))
				case took > 2*time.Second:
					t.Errorf("answered after %v: waited for the backend timeout", took)
				}
			})
		}
	}
}

// Headers a backend's Connection header names are hop-by-hop (RFC 9110
// section 7.6.1): the client does not get them (found by a review).
func TestFrontEndsDropHeadersTheBackendsConnectionNames(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nX-Kept: k\r\nContent-Length: 5\r\n\r\n<ok/>")
				return true
			})
			s, form := warmServer(t, backend.addr)
			addr := startMode(t, s, mode)
			got, _ := rawTalk(t, addr, 300*time.Millisecond, modesForm(form))
			if !strings.Contains(got, "<ok/>") || strings.Contains(got, "X-Secret: s") || !strings.Contains(got, "X-Kept: k") {
				t.Errorf("got %q; want the answer with X-Kept, without X-Secret", got)
			}
		})
	}
}

// Large answers the relay leaves to fasthttp (chunked, or with a header it
// does not relay), arriving in many reads with chunk-size lines cut: each
// front end delivers them whole, and the backend connection serves the
// next request after one. The loop parses such an answer once its end has
// arrived (answerPending), not on every read.
func TestFrontEndsLargeAnswersInPieces(t *testing.T) {
	body := strings.Repeat("<item>0123456789</item>", 40000) // 920 KB
	chunked := chunkedAnswer(body, 7, 4096, 1, 65536, 300)
	keepAlive := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	for _, answer := range []struct{ name, raw string }{{"chunked", chunked}, {"keep-alive", keepAlive}} {
		for _, mode := range frontEnds {
			t.Run(answer.name+"/"+mode, func(t *testing.T) {
				backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
					for i := 0; i < len(answer.raw); i += 50000 { // cuts size lines too
						c.Write([]byte(answer.raw[i:min(i+50000, len(answer.raw))]))
						time.Sleep(time.Millisecond)
					}
					return true
				})
				s, form := warmServer(t, backend.addr)
				addr := startMode(t, s, mode)
				for i := range 2 {
					resp, got, _ := askOnce(t, addr, modesForm(form))
					if resp.StatusCode != 200 || string(got) != body {
						t.Fatalf("request %d: %s, %d bytes; want 200 and %d bytes", i, resp.Status, len(got), len(body))
					}
				}
			})
		}
	}
}

// A backend's hop-by-hop headers and its own request ID never reach the
// client, whatever their case, and every front end answers alike: names
// as the backend wrote them, Server: ec2proxy where the backend names no
// server (found by a review: the goroutine server matched hop-by-hop
// names exactly, so "keep-alive", "connection" and a second
// "x-request-id" got through; the loops sent the backend's Connection
// value, wrote "Etag", and refusals without a Server header).
func TestFrontEndsAnswerHeadersAlike(t *testing.T) {
	const extra = "ETag: \"x\"\r\nkeep-alive: timeout=5\r\nx-request-id: theirs\r\nupgrade: h2c\r\nX-Secret: s\r\nX-Kept: k\r\n"
	answers := map[string]string{
		"chunked": "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n" + extra + "connection: x-secret\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n<ok/>\r\n0\r\n\r\n",
		"plain":   "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nDate: Thu, 26 Nov 2026 20:00:00 GMT\r\n" + extra + "Content-Length: 5\r\n\r\n<ok/>",
	}
	for _, kind := range []string{"chunked", "plain"} {
		for _, mode := range frontEnds {
			t.Run(kind+"/"+mode, func(t *testing.T) {
				backend := startScriptedBackend(t, func(c net.Conn, _ *http.Request, _ []byte) bool {
					fmt.Fprint(c, answers[kind])
					return true
				})
				s, form := warmServer(t, backend.addr)
				addr := startMode(t, s, mode)
				got, _ := rawTalk(t, addr, 300*time.Millisecond, modesForm(form))
				head, body, _ := strings.Cut(got, "\r\n\r\n")
				lower := strings.ToLower(head)
				gone := []string{"keep-alive:", "upgrade:", "connection:", "theirs"}
				if kind == "chunked" { // (a plain answer has no Connection header)
					gone = append(gone, "x-secret:")
				}
				for _, gone := range gone {
					if strings.Contains(lower, gone) {
						t.Errorf("the client got %q:\n%s", gone, head)
					}
				}
				for _, kept := range []string{"\r\nETag: \"x\"\r\n", "\r\nX-Kept: k\r\n", "\r\nServer: ec2proxy\r\n"} {
					if !strings.Contains(head, kept) {
						t.Errorf("no %q:\n%s", strings.TrimSpace(kept), head)
					}
				}
				if n := strings.Count(lower, "x-request-id:"); n != 1 || body != "<ok/>" {
					t.Errorf("%d request IDs, body %q:\n%s", n, body, head)
				}
				refusal, _ := rawTalk(t, addr, 300*time.Millisecond, modesForm("Action=DescribeRegions"))
				if !strings.Contains(refusal, "\r\nServer: ec2proxy\r\n") {
					t.Errorf("refusal without Server: ec2proxy:\n%s", refusal)
				}
			})
		}
	}
}
