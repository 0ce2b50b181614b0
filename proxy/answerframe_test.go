package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const chunkedHead = "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"

// chunkedAnswer frames body in chunks of the given sizes, in turn.
func chunkedAnswer(body string, sizes ...int) string {
	var b strings.Builder
	b.WriteString(chunkedHead)
	for i := 0; len(body) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// parsesAs is what the loop's parse makes of in: complete, cut short, or
// malformed.
func parsesAs(in []byte) string {
	var resp fasthttp.Response
	var rd bytes.Reader
	_, incomplete, err := parseAnswer(&resp, in, &rd, bufio.NewReaderSize(&rd, 64<<10))
	switch {
	case err == nil:
		return "complete"
	case incomplete:
		return "incomplete"
	}
	return "malformed"
}

func TestAnswerPending(t *testing.T) {
	cl := "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: keep-alive\r\nContent-Length: 10\r\n\r\n"
	cases := []struct {
		name, in string
		pending  bool
	}{
		{"keep-alive Content-Length, body short", cl + "01234", true},
		{"keep-alive Content-Length, body whole", cl + "0123456789", false},
		{"chunked, in a chunk", chunkedHead + "a\r\n01234", true},
		{"chunked, in a size line", chunkedHead + "a\r\n0123456789\r\n1", true},
		{"chunked, size line before its LF", chunkedHead + "a\r\n0123456789\r\n10\r", true},
		{"chunked, no chunk yet", chunkedHead, true},
		{"chunked, at the last chunk", chunkedHead + "a\r\n0123456789\r\n0\r\n", false},
		{"chunked, whole", chunkedHead + "a\r\n0123456789\r\n0\r\n\r\n", false},
		{"chunk extension", chunkedHead + "a;x=1\r\n01234", false},
		{"chunk without its CRLF", chunkedHead + "2\r\n0123456789\r\n", false},
		{"size line of nine digits", chunkedHead + "00000000a", false},
		{"chunk over the answer limit", chunkedHead + "8000000\r\n0", false},
		{"both framings", strings.Replace(chunkedHead, "\r\n\r\n", "\r\nContent-Length: 99\r\n\r\n", 1) + "a\r\n0", false},
		{"gzip transfer coding", strings.Replace(chunkedHead, "chunked", "gzip, chunked", 1) + "a\r\n0", false},
		{"two Content-Lengths", strings.Replace(cl, "\r\n\r\n", "\r\nContent-Length: 10\r\n\r\n", 1) + "0", false},
		{"chunks over the answer limit together", chunkedHead + "1\r\nx\r\n4000000\r\nabc", false}, // found by a review
		{"Unicode space in Content-Length", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: \xc2\xa010\r\n\r\n01234", false},
		{"HTTP/1.0", strings.Replace(chunkedHead, "HTTP/1.1", "HTTP/1.0", 1) + "a\r\n0", false},
		{"interim answer first", "HTTP/1.1 100 Continue\r\n\r\n" + cl + "0", false},
		{"no body by status", strings.Replace(cl, "200 OK", "304 Not Modified", 1), false},
		{"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n0123", false},
		{"head not complete", "HTTP/1.1 200 OK\r\nContent-Le", false},
		{"bare LF in the head", "HTTP/1.1 200 OK\nContent-Length: 10\r\n\r\n0", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := answerPending([]byte(tc.in), answerWalk{}); got != tc.pending {
				t.Errorf("pending = %v; want %v", got, tc.pending)
			}
			if tc.pending && parsesAs([]byte(tc.in)) != "incomplete" {
				t.Errorf("pending, but a parse finds it %s", parsesAs([]byte(tc.in)))
			}
		})
	}
}

// Read by read, as the loop calls it: every cut before the last chunk is
// pending, the whole answer never is, and each call resumes near where
// the read ended, not from the start (the quadratic cost this removes).
func TestAnswerPendingResumesReadByRead(t *testing.T) {
	body := strings.Repeat("<item>0123456789</item>", 12000) // 276 KB
	for _, sizes := range [][]int{{16 << 10}, {1, 7, 300, 4096, 65536}} {
		whole := []byte(chunkedAnswer(body, sizes...))
		last := bytes.LastIndex(whole, []byte("\r\n0\r\n")) + 2
		for _, step := range []int{1, 13, 4096} {
			var walked answerWalk
			// before the head is whole, scanAnswer waits for it
			for n := len(chunkedHead); ; n = min(n+step, len(whole)) {
				var pending bool
				walked, pending = answerPending(whole[:n], walked)
				if n < last && !pending {
					t.Fatalf("sizes %v step %d: not pending with %d of %d bytes (%s)", sizes, step, n, len(whole), parsesAs(whole[:n]))
				}
				if n < last && n-walked.pos > 65536+len("10000\r\n\r\n") {
					t.Fatalf("sizes %v step %d: walk stopped at %d with %d bytes read", sizes, step, walked.pos, n)
				}
				if n == len(whole) {
					if pending {
						t.Fatalf("sizes %v step %d: the whole answer is pending", sizes, step)
					}
					break
				}
			}
			if got := parsesAs(whole); got != "complete" {
				t.Fatalf("the answer parses %s", got)
			}
		}
	}
}

func TestAnswerPendingAllocatesNothing(t *testing.T) {
	in := []byte(chunkedAnswer(strings.Repeat("x", 10000), 1000))
	in = in[:len(in)-100]
	if n := testing.AllocsPerRun(100, func() { answerPending(in, answerWalk{}) }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

// Whatever a backend sends, and however it is cut: an answer called
// pending is one the loop's parse finds cut short (never complete, never
// malformed: a malformed answer is a 502 at once), and resuming a walk
// decides as a walk from the start does.
func FuzzAnswerPending(f *testing.F) {
	f.Add([]byte(chunkedAnswer("0123456789abcdef", 3, 5)), uint16(40))
	f.Add([]byte("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 10\r\n\r\n0123456789"), uint16(60))
	f.Add([]byte(chunkedAnswer("x", 1)+"HTTP/1.1 200 OK\r\n"), uint16(80))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		walked, pending := answerPending(in, answerWalk{})
		if pending {
			if got := parsesAs(in); got != "incomplete" {
				t.Fatalf("pending, but a parse finds it %s\n%q", got, in)
			}
		}
		first := int(cut) % (len(in) + 1)
		w, _ := answerPending(in[:first], answerWalk{})
		if w2, p2 := answerPending(in, w); w.pos > 0 && (w2 != walked || p2 != pending) {
			t.Fatalf("resumed at %+v: %+v %v; from the start: %+v %v\n%q", w, w2, p2, walked, pending, in)
		}
	})
}
