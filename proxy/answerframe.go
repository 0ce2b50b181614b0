package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// An answer the relay does not take (scanAnswer) is parsed by fasthttp,
// which reads it from its first byte: parsed again on every read, a large
// chunked answer, or one with a Content-Length and a header the relay
// leaves to fasthttp, cost time quadratic in its size (24 MB: 1.6 s of the
// loop's CPU against 0.23 s on the goroutine server). answerPending tells
// when a parse would certainly find the answer cut short, so the loop
// parses once the end has arrived: linear again.

// answerWalk is where a walk of an answer's chunks stopped: the start of
// a chunk-size line, and the body's size before it.
type answerWalk struct{ pos, body int }

// answerPending reports whether in, a backend answer read so far, ends
// before its body does. w is where an earlier call on the same answer
// stopped walking its chunks (zero at first); pass the returned value to
// the next call. It answers false for anything unusual (HTTP/1.0, interim
// answers, chunk extensions, both framings at once, a body over the
// limit): fasthttp then decides, as it does for a complete answer.
func answerPending(in []byte, w answerWalk) (answerWalk, bool) {
	if w.pos > 0 {
		return walkChunks(in, w)
	}
	headEnd := bytes.Index(in, crlf2)
	if headEnd < 0 {
		return w, false // scanAnswer waits for the head; past its limit, fasthttp decides
	}
	line, rest, ok := cutLine(in[:headEnd+2])
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return w, false
	}
	if !bodyStatus(line[9:12]) {
		return w, false
	}
	size, chunked := -1, false
	for len(rest) > 0 {
		var name, value []byte
		if name, value, rest, ok = cutHeaderLine(rest); !ok {
			return w, false
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseSize(trimOWS(value))
			if !ok || size >= 0 {
				return w, false
			}
			size = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if chunked || !bytes.EqualFold(trimOWS(value), []byte("chunked")) {
				return w, false
			}
			chunked = true
		}
	}
	bodyStart := headEnd + len(crlf2)
	switch {
	case chunked && size < 0:
		return walkChunks(in, answerWalk{pos: bodyStart})
	case !chunked && size >= 0:
		return w, len(in) < bodyStart+size
	}
	return w, false // close-delimited (see closeDelimited), or both framings
}

// trimOWS trims spaces and tabs, HTTP's optional whitespace (bytes.TrimSpace
// also trims Unicode spaces, which fasthttp refuses in a value: found by a
// review).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// bodyStatus reports whether a three-byte status code is one whose answer
// has a body framed as usual: 200-599 but 204 and 304.
func bodyStatus(code []byte) bool {
	for _, c := range code {
		if c < '0' || c > '9' {
			return false
		}
	}
	s := string(code)
	return s >= "200" && s <= "599" && s != "204" && s != "304"
}

// walkChunks walks the chunks of a body from w: a chunk-size line of hex
// digits and CRLF (fasthttp also reads extensions and blanks; this does
// not), the data, CRLF. It stops at the last chunk (size 0), whose
// trailers fasthttp reads, where in ends, or at a chunk that takes the
// body over maxBackendAnswer (fasthttp refuses it from its size line).
func walkChunks(in []byte, w answerWalk) (answerWalk, bool) {
	const maxDigits = 8 // maxBackendAnswer needs 7
	p := w.pos
	for {
		w.pos = p
		i := p
		for i < len(in) && i-p <= maxDigits && hexValue(in[i]) >= 0 {
			i++
		}
		switch {
		case i-p > maxDigits:
			return w, false
		case i == len(in):
			return w, true // the size line is on its way
		case i == p || in[i] != '\r':
			return w, false
		case i+1 == len(in):
			return w, true
		case in[i+1] != '\n':
			return w, false
		}
		size := 0
		for _, c := range in[p:i] {
			size = size<<4 | hexValue(c)
		}
		if size == 0 || w.body+size > maxBackendAnswer {
			return w, false
		}
		end := i + 2 + size + 2
		if end > len(in) {
			return w, true
		}
		if in[end-2] != '\r' || in[end-1] != '\n' {
			return w, false
		}
		p, w.body = end, w.body+size
	}
}

func hexValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseAnswer parses the backend answer at the start of in into resp,
// through rd and br (reused: no allocation). It returns the bytes the
// answer took, or the error and whether it only means that in ends before
// the answer does.
func parseAnswer(resp *fasthttp.Response, in []byte, rd *bytes.Reader, br *bufio.Reader) (used int, incomplete bool, err error) {
	rd.Reset(in)
	br.Reset(rd)
	resp.Reset()
	resp.Header.DisableNormalizing() // names as the backend wrote them, as the goroutine pipeline's client keeps them
	if err := resp.ReadLimitBody(br, maxBackendAnswer); err != nil {
		// A chunk size line cut by the read is fasthttp's ErrBrokenChunk,
		// which does not unwrap to io.EOF: the parser running out of input
		// is what says the answer is incomplete.
		incomplete := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || rd.Len() == 0 && br.Buffered() == 0
		return 0, incomplete, err
	}
	return len(in) - rd.Len() - br.Buffered(), false, nil
}
