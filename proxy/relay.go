package proxy

import (
	"bytes"
	"strings"
)

// A plain backend answer is relayed as bytes, without a fasthttp
// Response parse and re-write: an HTTP/1.1 status of 200-599 other than
// 204 and 304, CRLF-ended header lines, one Content-Length and no
// Transfer-Encoding, Connection or obsolete line folding, a Content-Type
// and a Date (fasthttp would add its default Content-Type, and its Date;
// the relay keeps the backend's). The relayed answer is the
// one forwarded() makes of it: hop-by-hop headers and the backend's
// X-Request-Id dropped, ours added. Anything else takes the fasthttp path.

var crlf2 = []byte("\r\n\r\n")

// serverName is the Server header of an answer whose backend names none,
// and of refusals.
const serverName = "ec2proxy"

// maxBackendAnswer matches the goroutine pipeline's HostClient limit.
const maxBackendAnswer = 64 << 20

// answerHead describes a complete plain answer at the start of a buffer.
type answerHead struct {
	status int
	end    int // just past the body: where the next answer would start
}

type answerScan uint8

const (
	answerIncomplete answerScan = iota // the head or body is still on its way
	answerPlain                        // relay it as bytes
	answerOther                        // parse it with fasthttp
)

// scanAnswer checks whether in starts with a complete plain answer.
func scanAnswer(in []byte) (answerHead, answerScan) {
	headEnd := bytes.Index(in, crlf2)
	if headEnd < 0 {
		if len(in) > 16<<10 { // a head this large is not one we relay
			return answerHead{}, answerOther
		}
		return answerHead{}, answerIncomplete
	}
	head := in[:headEnd+2] // each line with its CRLF
	line, rest, ok := cutLine(head)
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return answerHead{}, answerOther
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return answerHead{}, answerOther
		}
		status = status*10 + int(c-'0')
	}
	if status < 200 || status > 599 || status == 204 || status == 304 {
		return answerHead{}, answerOther
	}
	size, sawType, sawDate := -1, false, false
	for len(rest) > 0 {
		var name, value []byte
		if name, value, rest, ok = cutHeaderLine(rest); !ok {
			return answerHead{}, answerOther
		}
		switch len(name) { // lengths first: most names are none of these
		case len("Content-Length"):
			if bytes.EqualFold(name, []byte("Content-Length")) {
				n, ok := parseSize(trimOWS(value)) // not TrimSpace: fasthttp refuses a Unicode space there
				if !ok || size >= 0 {
					return answerHead{}, answerOther
				}
				size = n
			}
		case len("Content-Type"):
			sawType = sawType || bytes.EqualFold(name, []byte("Content-Type"))
		case len("Date"):
			sawDate = sawDate || bytes.EqualFold(name, []byte("Date"))
		case len("Transfer-Encoding"), len("Connection"):
			if bytes.EqualFold(name, []byte("Transfer-Encoding")) || bytes.EqualFold(name, []byte("Connection")) {
				return answerHead{}, answerOther
			}
		}
	}
	if size < 0 || !sawType || !sawDate {
		return answerHead{}, answerOther
	}
	end := headEnd + len(crlf2) + size
	if end > len(in) {
		return answerHead{}, answerIncomplete
	}
	return answerHead{status: status, end: end}, answerPlain
}

// cutLine splits off the first CRLF-ended line; a bare CR or LF, or an
// empty line, is not ok.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if len(line) == 0 || bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// cutHeaderLine splits off the CRLF-ended header line at the start of b,
// in one pass: a token for a name (so no leading space: no obsolete line
// folding), a colon, and a value without control characters (no bare CR or
// LF), as fasthttp requires of what it reads.
func cutHeaderLine(b []byte) (name, value, rest []byte, ok bool) {
	i := 0
	for i < len(b) && tokenChar[b[i]] {
		i++
	}
	if i == 0 || i == len(b) || b[i] != ':' {
		return nil, nil, nil, false
	}
	colon := i
	for i++; i < len(b); i++ {
		if c := b[i]; c >= ' ' && c != 0x7f || c == '\t' {
			continue
		}
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			return b[:colon], b[colon+1 : i], b[i+2:], true
		}
		return nil, nil, nil, false
	}
	return nil, nil, nil, false
}

// tokenChar is RFC 9110's tchar set.
var tokenChar = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// parseSize reads a Content-Length: digits only, at most maxBackendAnswer.
func parseSize(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= maxBackendAnswer
}

// appendRelayed appends the plain answer msg (as scanAnswer found it) as
// the client gets it: the backend's hop-by-hop headers and request ID
// dropped, requestID added, and Connection: close if closing.
func appendRelayed(dst, msg, requestID []byte, closing bool) []byte {
	headEnd := bytes.Index(msg, crlf2) + 2
	rest := msg[:headEnd]
	line, rest, _ := cutLine(rest)
	dst = append(dst, line...)
	dst = append(dst, "\r\n"...)
	named := false      // a server
	for len(rest) > 0 { // scanAnswer checked every line
		i := bytes.IndexByte(rest, '\n') + 1
		line := rest[:i] // with its CRLF
		rest = rest[i:]
		name := line[:bytes.IndexByte(line, ':')]
		if !notRelayed(name, nil) { // a plain answer has no Connection header
			dst = append(dst, line...)
		}
		named = named || len(name) == len("Server") && bytes.EqualFold(name, []byte("Server"))
	}
	if !named { // as the goroutine server's fasthttp.Server does
		dst = append(append(append(dst, "Server: "...), serverName...), "\r\n"...)
	}
	dst = append(dst, "X-Request-Id: "...)
	dst = append(dst, requestID...)
	dst = append(dst, "\r\n"...)
	if closing {
		dst = append(dst, "Connection: close\r\n"...)
	}
	return append(dst, msg[headEnd:]...) // the blank line, then the body
}

// notRelayed reports a backend header the client must not get: a
// hop-by-hop one, or one the backend's Connection header lists (but those
// that describe the message), and the backend's X-Request-Id, which ours
// replaces. connection is the backend's Connection values, joined.
func notRelayed(name, connection []byte) bool {
	return isHopByHop(name) || len(name) == len(headerRequestID) && bytes.EqualFold(name, []byte(headerRequestID)) ||
		len(connection) > 0 && isListedIn(connection, name) && !describesMessage(name)
}

// describesMessage reports the headers a Connection header cannot make
// hop-by-hop: without them the body cannot be read.
func describesMessage(name []byte) bool {
	return isMessageHeader(name) || bytes.EqualFold(name, []byte("content-length")) || bytes.EqualFold(name, []byte("content-encoding"))
}

// closeDelimited reports whether the final answer head in in (after any
// 1xx interim heads) frames no body: no Content-Length, no
// Transfer-Encoding, and a status that has a body. The body then ends
// when the backend closes (RFC 9112 section 6.3), not where the bytes read
// so far end. A head not complete yet is not (yet) close-delimited.
func closeDelimited(in []byte) bool {
	for {
		end := bytes.Index(in, crlf2)
		if end < 0 || end < 12 || !bytes.HasPrefix(in, []byte("HTTP/1.")) {
			return false
		}
		head := in[:end+2]
		switch status := string(head[9:12]); {
		case status[0] == '1':
			in = in[end+len(crlf2):] // interim: the final head follows
			continue
		case status == "204" || status == "304":
			return false
		}
		_, rest, _ := bytes.Cut(head, []byte("\r\n"))
		for len(rest) > 0 {
			var line []byte
			line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			name, _, _ := bytes.Cut(line, []byte{':'})
			name = bytes.TrimSpace(name)
			if bytes.EqualFold(name, []byte("Content-Length")) || bytes.EqualFold(name, []byte("Transfer-Encoding")) {
				return false
			}
		}
		return true
	}
}
