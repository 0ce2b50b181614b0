package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

var v1Seeds = []string{
	v1Line4,
	v1Line4 + request,
	"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n",
	"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n",
	"PROXY TCP6 " + full6 + " " + full6 + " 65535 65535\r\n",
	"PROXY UNKNOWN\r\n",
	"PROXY UNKNOWN " + full6 + " " + full6 + " 65535 65535\r\n",
	"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
	"PROXY TCP4 192.0.2.1 198.51.100.2 1 080\r\n",
	"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
	"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n",
	"GET / HTTP/1.1\r\n",
}

// checkPrefixes: every proper prefix of a valid header is incomplete,
// which the connection's read loop relies on to wait for more bytes.
func checkPrefixes(t *testing.T, parse func([]byte) (Header, int, error), b []byte, n int) {
	for k := range n {
		if _, _, err := parse(b[:k]); err != ErrIncomplete {
			t.Fatalf("the %d-byte prefix of the %d-byte header %q: error %v; want ErrIncomplete", k, n, b[:n], err)
		}
	}
}

func checkErr(t *testing.T, b []byte, err error) {
	if err != ErrIncomplete && !errors.Is(err, ErrInvalid) {
		t.Fatalf("parsing %q: error %v is neither ErrIncomplete nor ErrInvalid", b, err)
	}
}

// Parsing never panics; a valid line ends with CRLF within MaxV1Len bytes,
// formats back to a line that parses to the same header, and each of its
// prefixes is incomplete.
func FuzzParseV1(f *testing.F) {
	for _, s := range v1Seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseV1(b)
		if err != nil {
			checkErr(t, b, err)
			return
		}
		if n < len("PROXY UNKNOWN\r\n") || n > min(len(b), MaxV1Len) || !bytes.HasSuffix(b[:n], []byte("\r\n")) || h.Version != 1 {
			t.Fatalf("ParseV1(%q) = %+v, %d", b, h, n)
		}
		checkPrefixes(t, ParseV1, b, n)
		if !h.Source.IsValid() {
			if h != (Header{Version: 1}) || !bytes.HasPrefix(b, []byte("PROXY UNKNOWN")) {
				t.Fatalf("ParseV1(%q) = %+v", b, h)
			}
			return
		}
		proto := "TCP6"
		if h.Source.Addr().Is4() {
			proto = "TCP4"
		}
		line := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", proto, h.Source.Addr(), h.Destination.Addr(), h.Source.Port(), h.Destination.Port())
		h2, n2, err := ParseV1([]byte(line))
		if err != nil || h2 != h || n2 != len(line) {
			t.Fatalf("ParseV1(%q) = %+v; its line %q parses to %+v, %d, %v", b, h, line, h2, n2, err)
		}
	})
}

// Parsing never panics; a valid header is 16 bytes plus its length, at most
// MaxV2Len; it has addresses exactly for TCP over IPv4 or IPv6, which encode
// back to the same header; each of its prefixes is incomplete.
func FuzzParseV2(f *testing.F) {
	tcp4 := inet4("192.0.2.1", "198.51.100.2", 56324, 443)
	tcp6 := inet6("2001:db8::1", "2001:db8::2", 1, 65535)
	for _, b := range [][]byte{
		v2(0x21, 0x11, tcp4),
		append(v2(0x21, 0x11, tcp4), request...),
		v2(0x21, 0x21, tcp6),
		v2(0x21, 0x11, tcp4, tlv(0x01, "h2"), tlv(0x02, "ec2.example")),
		v2(0x20, 0x00),
		v2(0x20, 0x11, tcp4),
		v2(0x21, 0x00),
		v2(0x21, 0x12, tcp4),
		v2(0x21, 0x31, make([]byte, 216)),
		v2(0x21, 0x21, tcp4),
		v2(0x22, 0x11, tcp4),
		v2(0x21, 0x41, tcp4),
		[]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseV2(b)
		if err != nil {
			checkErr(t, b, err)
			return
		}
		if n < 16 || n > min(len(b), MaxV2Len) || n != 16+int(binary.BigEndian.Uint16(b[14:16])) || h.Version != 2 {
			t.Fatalf("ParseV2(%q) = %+v, %d", b, h, n)
		}
		checkPrefixes(t, ParseV2, b, n)
		tcp := b[12] == 0x21 && (b[13] == 0x11 || b[13] == 0x21)
		if h.Source.IsValid() != tcp || h.Destination.IsValid() != tcp {
			t.Fatalf("ParseV2(%q) = %+v; addresses should be there exactly for TCP", b, h)
		}
		if !tcp {
			return
		}
		var enc []byte
		if h.Source.Addr().Is4() {
			enc = v2(0x21, 0x11, inet4(h.Source.Addr().String(), h.Destination.Addr().String(), h.Source.Port(), h.Destination.Port()))
		} else {
			enc = v2(0x21, 0x21, inet6(h.Source.Addr().String(), h.Destination.Addr().String(), h.Source.Port(), h.Destination.Port()))
		}
		if h2, _, err := ParseV2(enc); err != nil || h2 != h {
			t.Fatalf("ParseV2(%q) = %+v; encoded again it parses to %+v, %v", b, h, h2, err)
		}
	})
}

// chunkReader returns at most size bytes per Read.
type chunkReader struct {
	b    []byte
	size int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// However the bytes are split into reads, readHeader finds the same header
// (the one the parsers find) or fails the same way, and loses no byte.
func FuzzReadHeader(f *testing.F) {
	for _, s := range v1Seeds {
		f.Add([]byte(s), uint8(1), false)
	}
	f.Add(append(v2(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 1, 2), tlv(0xE0, string(make([]byte, 300)))), request...), uint8(7), false)
	f.Add([]byte(request), uint8(3), true)
	f.Add([]byte("PRO"), uint8(1), true)
	f.Add([]byte{}, uint8(1), false)
	f.Fuzz(func(t *testing.T, b []byte, size uint8, optional bool) {
		var hs [2]Header
		var lens [2]int
		var errs [2]error
		for i, r := range []*chunkReader{{b, len(b) + 1}, {b, int(size%64) + 1}} {
			h, rest, err := readHeader(r, optional)
			hs[i], errs[i] = h, err
			if err != nil {
				continue
			}
			lens[i] = len(b) - len(rest) - len(r.b)
			if lens[i] < 0 || !bytes.Equal(b[lens[i]:], append(rest, r.b...)) {
				t.Fatalf("readHeader(%q) lost bytes: rest %q, unread %q", b, rest, r.b)
			}
		}
		if hs[0] != hs[1] || lens[0] != lens[1] || (errs[0] == nil) != (errs[1] == nil) ||
			errors.Is(errs[0], ErrNoHeader) != errors.Is(errs[1], ErrNoHeader) ||
			errors.Is(errs[0], ErrInvalid) != errors.Is(errs[1], ErrInvalid) {
			t.Fatalf("readHeader(%q): %+v, %d bytes, %v at once; %+v, %d bytes, %v in %d-byte reads",
				b, hs[0], lens[0], errs[0], hs[1], lens[1], errs[1], int(size%64)+1)
		}
		if errs[0] != nil || lens[0] == 0 {
			return // no header (optional) or none to compare
		}
		parse := ParseV1
		if b[0] != 'P' {
			parse = ParseV2
		}
		if h, n, err := parse(b); err != nil || h != hs[0] || n != lens[0] {
			t.Fatalf("readHeader(%q) = %+v, %d bytes; the parser gives %+v, %d, %v", b, hs[0], lens[0], h, n, err)
		}
	})
}
