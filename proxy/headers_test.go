package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// The first-letter shortcuts must not skip any listed name, whatever its case.
func TestHeaderShortcutsCoverTheLists(t *testing.T) {
	for _, p := range spoofablePrefixes {
		//lint:ignore SA1019 the names are ASCII, which strings.Title handles
		for _, name := range []string{string(p), strings.ToUpper(string(p)) + "X", strings.Title(string(p))} {
			if !isSpoofable([]byte(name)) {
				t.Errorf("isSpoofable(%q) = false", name)
			}
		}
	}
	for _, h := range hopByHop {
		for _, name := range []string{string(h), strings.ToUpper(string(h))} {
			if !isHopByHop([]byte(name)) {
				t.Errorf("isHopByHop(%q) = false", name)
			}
		}
	}
	for _, name := range []string{"", "Host", "User-Agent", "Content-Type", "Authorization", "X-Amz-Date"} {
		if isSpoofable([]byte(name)) || isHopByHop([]byte(name)) {
			t.Errorf("%q is filtered", name)
		}
	}
}

// A Transfer-Encoding other than chunked is found whatever its case and
// spacing; the shortcut past other lines must not skip it.
func TestBadTransferEncoding(t *testing.T) {
	for raw, want := range map[string]bool{
		"Host: a\r\nContent-Length: 3\r\n\r\n":               false,
		"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n":      false,
		"Host: a\r\ntransfer-encoding:  CHUNKED \r\n\r\n":    false,
		"Host: a\r\nTransfer-Encoding: gzip\r\n\r\n":         true,
		"Host: a\r\nTRANSFER-ENCODING: identity\r\n\r\n":     true,
		"Host: a\r\nTransfer-Encoding : gzip\r\n\r\n":        true,
		"Host: a\r\n Transfer-Encoding: gzip\r\n\r\n":        true,
		"Host: a\r\n\tTransfer-Encoding:gzip\n\n":            true,
		"Transfer-Encoding:":                                 true,
		"Host: a\r\nTE: gzip\r\nTrailer: Transfer-Encoding:": false,
		"Host: a\r\nX-Note: Transfer-Encoding: gzip\r\n\r\n": false,
	} {
		if got, _ := checkHeaders([]byte(raw)); got != want {
			t.Errorf("checkHeaders(%q) = %v, want %v", raw, got, want)
		}
	}
}

// A header name with a blank passes fasthttp, and Python's parser
// (eventlet under nova) stops reading headers at it: the identity headers
// after it, and Content-Length, would be lost and the body read as a
// second request (found by a review). checkHeaders names it.
func TestCheckHeadersNames(t *testing.T) {
	for raw, want := range map[string]string{
		"Host: a\r\nX-Pad: 1\r\n\r\n":                       "",
		"Host: a\r\nX Pad: 1\r\nContent-Length: 3\r\n\r\n":  "X Pad",
		"Host: a\r\nX-A: 1\r\n folded value\r\n\r\n":        "",
		"Host: a\r\nX-A: value with spaces: and colons\r\n": "",
		"Host: a\r\n!#$%&'*+-.^_`|~09azAZ: 1\r\n":           "",
	} {
		if _, got := checkHeaders([]byte(raw)); string(got) != want {
			t.Errorf("checkHeaders(%q) name = %q, want %q", raw, got, want)
		}
	}
}

// checkHeaders looks only for the blank: every other byte that is not a
// token's, fasthttp's parser refuses in a name. This holds them to it, so
// that a fasthttp upgrade that lets more through fails here.
func TestCheckHeadersCoversWhatFasthttpLetsThrough(t *testing.T) {
	for c := range 256 {
		if tokenChar[c] || c == ':' || c == '\r' || c == '\n' {
			continue
		}
		raw := "GET / HTTP/1.1\r\nHost: a\r\nX" + string([]byte{byte(c)}) + "Y: 1\r\n\r\n"
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			continue // fasthttp refuses it
		}
		if _, bad := checkHeaders(h.RawHeaders()); bad == nil {
			t.Errorf("byte %#x in a header name: fasthttp accepts it and checkHeaders does not name it", c)
		}
	}
}

// A botocore request's header block: checkHeaders runs on every request.
var typicalHead = []byte("Host: ec2.example.com:8773\r\nUser-Agent: Boto3/1.26.27 Python/3.11.2 Linux/6.1.0 Botocore/1.29.27\r\n" +
	"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: 229\r\nX-Amz-Date: 20261126T190000Z\r\n" +
	"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/RegionOne/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, " +
	"Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\nAccept-Encoding: identity\r\n\r\n")

func BenchmarkCheckHeaders(b *testing.B) {
	for b.Loop() {
		checkHeaders(typicalHead)
	}
}
