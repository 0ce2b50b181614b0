package proxy

import (
	"strings"
	"testing"
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

// A header name with a blank or another non-token byte passes fasthttp,
// and Python's parser (eventlet under nova) stops reading headers at it:
// the identity headers after it, and Content-Length, would be lost and the
// body read as a second request (found by a review). checkHeaders names it.
func TestCheckHeadersNames(t *testing.T) {
	for raw, want := range map[string]string{
		"Host: a\r\nX-Pad: 1\r\n\r\n":                       "",
		"Host: a\r\nX Pad: 1\r\nContent-Length: 3\r\n\r\n":  "X Pad",
		"Host: a\r\nX(Roles): 1\r\n\r\n":                    "X(Roles)",
		"Host: a\r\nX-\x7fRoles: 1\r\n\r\n":                 "X-\x7fRoles",
		"Host: a\r\nNoColon\x01\r\n\r\n":                    "NoColon\x01",
		"Host: a\r\nX-A: 1\r\n folded value\r\n\r\n":        "",
		"Host: a\r\nX-A: value with spaces: and colons\r\n": "",
		"Host: a\r\n!#$%&'*+-.^_`|~09azAZ: 1\r\n":           "",
	} {
		if _, got := checkHeaders([]byte(raw)); string(got) != want {
			t.Errorf("checkHeaders(%q) name = %q, want %q", raw, got, want)
		}
	}
}
