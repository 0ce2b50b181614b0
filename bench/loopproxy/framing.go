//go:build linux

package main

import "bytes"

var (
	crlf2            = []byte("\r\n\r\n")
	contentLength    = []byte("content-length:")
	transferEncoding = []byte("transfer-encoding:")
	connection       = []byte("connection:")
)

// message returns the size of the first complete HTTP/1.1 message in buf
// (0: not complete yet), and false when it cannot be relayed: a chunked or
// malformed one, or one larger than maxMessage.
func message(buf []byte) (int, bool) {
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return 0, len(buf) < maxMessage
	}
	head := buf[:end+2]
	body, seen := 0, false
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		line := head[:i+1]
		head = head[i+1:]
		switch {
		case hasPrefixFold(line, contentLength):
			value := bytes.TrimSpace(line[len(contentLength):])
			if seen || len(value) == 0 || len(value) > 7 {
				return 0, false
			}
			for _, ch := range value {
				if ch < '0' || ch > '9' {
					return 0, false
				}
				body = body*10 + int(ch-'0')
			}
			seen = true
		case hasPrefixFold(line, transferEncoding):
			return 0, false
		}
	}
	size := end + len(crlf2) + body
	switch {
	case size > maxMessage:
		return 0, false
	case size > len(buf):
		return 0, true
	}
	return size, true
}

func hasPrefixFold(line, prefix []byte) bool {
	return len(line) >= len(prefix) && bytes.EqualFold(line[:len(prefix)], prefix)
}

// rewrite appends the request msg to out without its Connection header, as
// a proxy must (it names this hop's options).
func rewrite(msg, out []byte) []byte {
	end := bytes.Index(msg, crlf2) + 2
	head := msg[:end]
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		line := head[:i+1]
		head = head[i+1:]
		if !hasPrefixFold(line, connection) {
			out = append(out, line...)
		}
	}
	return append(out, msg[end:]...)
}
