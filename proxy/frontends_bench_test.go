//go:build linux && !race

package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFrontEndsLargeAnswer fetches a 4 MiB answer the relay leaves to
// fasthttp (chunked in 16 KiB chunks, or a Content-Length beside a
// Connection header), written 16 KiB at a time, through each front end, and reports the process's CPU
// per answer: the backend and the client are the same for every front
// end, so the goroutine server is the baseline (ns/op is mostly the
// backend's pauses). Before answerPending the loops parsed such an answer
// again on every read: 95-130 cpu-ms/op against the goroutine server's
// 20-26; 33-43 since (docs/performance.md).
func BenchmarkFrontEndsLargeAnswer(b *testing.B) {
	body := strings.Repeat("<item>0123456789</item>", 4<<20/23)
	answers := map[string]string{
		"chunked":    chunkedAnswer(body, 16<<10),
		"keep-alive": fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s", len(body), body),
	}
	for _, kind := range []string{"chunked", "keep-alive"} {
		for _, mode := range frontEnds {
			b.Run(kind+"/"+mode, func(b *testing.B) {
				raw := answers[kind]
				backend := startScriptedBackend(b, func(c net.Conn, _ *http.Request, _ []byte) bool {
					for i := 0; i < len(raw); i += 16 << 10 {
						if _, err := io.WriteString(c, raw[i:min(i+16<<10, len(raw))]); err != nil {
							return false
						}
						time.Sleep(20 * time.Microsecond) // as a backend writing while it renders
					}
					return true
				})
				s, form := warmServer(b, backend.addr)
				s.routes[0].timeout = time.Minute
				addr := startMode(b, s, mode)
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				request := modesForm(form)
				buf := make([]byte, 256<<10)
				cpu := processCPU()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := io.WriteString(conn, request); err != nil {
						b.Fatal(err)
					}
					if err := readAnswerOf(conn, buf, len(body)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((processCPU()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// readAnswerOf reads one answer whose body is n bytes (with a
// Content-Length: the front ends send every answer so), keeping only its
// head.
func readAnswerOf(c net.Conn, buf []byte, n int) error {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	var head []byte
	body := -1
	for body < n {
		k, err := c.Read(buf)
		if err != nil {
			return err
		}
		if body >= 0 {
			body += k
			continue
		}
		head = append(head, buf[:k]...)
		if i := bytes.Index(head, crlf2); i >= 0 {
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
				return fmt.Errorf("answer: %.60q", head)
			}
			body = len(head) - i - len(crlf2)
		}
	}
	if body != n {
		return fmt.Errorf("body: %d bytes, want %d", body, n)
	}
	return nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
