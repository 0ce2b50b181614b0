package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a version 2 header: signature, the version/command and
// family/transport bytes, the length of body, body (addresses, TLVs).
func v2(verCmd, famProto byte, body ...[]byte) []byte {
	b := append([]byte(nil), v2Signature...)
	joined := bytes.Join(body, nil)
	b = append(b, verCmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(joined)))
	return append(b, joined...)
}

// inet4 is a v2 address block for TCP or UDP over IPv4.
func inet4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func inet6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func tlv(typ byte, value string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{typ}, uint16(len(value)))
	return append(b, value...)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

const (
	full6   = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	v1Line4 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
)

func TestParseV1(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    Header
		wantN   int // 0: len(give)
		wantErr error
	}{
		{name: "tcp4", give: v1Line4, want: Header{1, ap("192.0.2.1:56324"), ap("198.51.100.2:443")}},
		{name: "tcp4 then http", give: v1Line4 + "GET / HTTP/1.1\r\n\r\n", want: Header{1, ap("192.0.2.1:56324"), ap("198.51.100.2:443")}, wantN: len(v1Line4)},
		{name: "tcp6", give: "PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n", want: Header{1, ap("[2001:db8::1]:0"), ap("[2001:db8::2]:65535")}},
		{name: "tcp6 longest", give: "PROXY TCP6 " + full6 + " " + full6 + " 65535 65535\r\n", want: Header{1, ap("[" + full6 + "]:65535"), ap("[" + full6 + "]:65535")}},
		{name: "tcp6 v4-mapped", give: "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n", want: Header{1, ap("[::ffff:192.0.2.1]:1"), ap("[::1]:2")}},
		{name: "unknown", give: "PROXY UNKNOWN\r\n", want: Header{Version: 1}},
		{name: "unknown longest", give: "PROXY UNKNOWN " + full6 + " " + full6 + " 65535 65535\r\n", want: Header{Version: 1}},
		{name: "unknown ignores the rest", give: "PROXY UNKNOWN what\rever\r\nGET", want: Header{Version: 1}, wantN: len("PROXY UNKNOWN what\rever\r\n")},

		{name: "empty", give: "", wantErr: ErrIncomplete},
		{name: "part of PROXY", give: "PRO", wantErr: ErrIncomplete},
		{name: "no CRLF yet", give: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443", wantErr: ErrIncomplete},
		{name: "CR without LF yet", give: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r", wantErr: ErrIncomplete},
		{name: "106 bytes without LF", give: "PROXY UNKNOWN " + strings.Repeat("x", 92), wantErr: ErrIncomplete},

		{name: "107 bytes without LF", give: "PROXY UNKNOWN " + strings.Repeat("x", 93), wantErr: ErrInvalid},
		{name: "LF past 107 bytes", give: "PROXY UNKNOWN " + strings.Repeat("x", 93) + "\r\n", wantErr: ErrInvalid},
		{name: "http", give: "GET / HTTP/1.1\r\n", wantErr: ErrInvalid},
		{name: "lower case", give: "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "bare LF", give: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n", wantErr: ErrInvalid},
		{name: "LF alone", give: "PROXY\n", wantErr: ErrInvalid},
		{name: "CR CR LF", give: "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\r\n", wantErr: ErrInvalid},
		{name: "PROXY alone", give: "PROXY\r\n", wantErr: ErrInvalid},
		{name: "no space after PROXY", give: "PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "UNKNOWN glued", give: "PROXY UNKNOWNX\r\n", wantErr: ErrInvalid},
		{name: "unknown protocol", give: "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "udp", give: "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "two spaces", give: "PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "tab", give: "PROXY TCP4\t192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "missing port", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", wantErr: ErrInvalid},
		{name: "extra field", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", wantErr: ErrInvalid},
		{name: "trailing space", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n", wantErr: ErrInvalid},
		{name: "tcp4 with ipv6", give: "PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "tcp4 with v4-mapped", give: "PROXY TCP4 ::ffff:192.0.2.1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "tcp6 with ipv4", give: "PROXY TCP6 2001:db8::1 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "ipv4 leading zero", give: "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "ipv4 short", give: "PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "ipv6 zone", give: "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", wantErr: ErrInvalid},
		{name: "hostname", give: "PROXY TCP4 localhost 198.51.100.2 1 2\r\n", wantErr: ErrInvalid},
		{name: "port plus", give: "PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n", wantErr: ErrInvalid},
		{name: "port minus", give: "PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n", wantErr: ErrInvalid},
		{name: "port leading zero", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 080\r\n", wantErr: ErrInvalid},
		{name: "port 65536", give: "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", wantErr: ErrInvalid},
		{name: "port 99999", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 99999\r\n", wantErr: ErrInvalid},
		{name: "port six digits", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 100000\r\n", wantErr: ErrInvalid},
		{name: "port hex", give: "PROXY TCP4 192.0.2.1 198.51.100.2 0x1 2\r\n", wantErr: ErrInvalid},
		{name: "port letter", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1a 2\r\n", wantErr: ErrInvalid},
		{name: "empty port", give: "PROXY TCP4 192.0.2.1 198.51.100.2  2\r\n", wantErr: ErrInvalid},
		{name: "NUL", give: "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\x00\r\n", wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := ParseV1([]byte(tt.give))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("ParseV1(%q) error = %v; want %v", tt.give, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			wantN := tt.wantN
			if wantN == 0 {
				wantN = len(tt.give)
			}
			if h != tt.want || n != wantN {
				t.Errorf("ParseV1(%q) = %+v, %d; want %+v, %d", tt.give, h, n, tt.want, wantN)
			}
		})
	}
}

func TestParseV2(t *testing.T) {
	tcp4 := inet4("192.0.2.1", "198.51.100.2", 56324, 443)
	tcp6 := inet6("2001:db8::1", "2001:db8::2", 1, 65535)
	want4 := Header{2, ap("192.0.2.1:56324"), ap("198.51.100.2:443")}
	tests := []struct {
		name    string
		give    []byte
		want    Header
		wantN   int // 0: len(give)
		wantErr error
	}{
		{name: "tcp4", give: v2(0x21, 0x11, tcp4), want: want4},
		{name: "tcp4 then http", give: append(v2(0x21, 0x11, tcp4), "GET /"...), want: want4, wantN: 16 + 12},
		{name: "tcp6", give: v2(0x21, 0x21, tcp6), want: Header{2, ap("[2001:db8::1]:1"), ap("[2001:db8::2]:65535")}},
		{name: "tcp4 with TLVs", give: v2(0x21, 0x11, tcp4, tlv(0x01, "h2"), tlv(0x02, "ec2.example"), tlv(0xEA, "\x01vpce-0123")), want: want4},
		{name: "tcp4 longest", give: v2(0x21, 0x11, tcp4, tlv(0x04, strings.Repeat("x", MaxV2Len-16-12-3))), want: want4},
		{name: "local", give: v2(0x20, 0x00), want: Header{Version: 2}},
		{name: "local with addresses", give: v2(0x20, 0x11, tcp4), want: Header{Version: 2}},
		{name: "local ignores the family", give: v2(0x20, 0xff, []byte("xyz")), want: Header{Version: 2}},
		{name: "unspec", give: v2(0x21, 0x00), want: Header{Version: 2}},
		{name: "unspec with bytes", give: v2(0x21, 0x00, tcp4), want: Header{Version: 2}},
		{name: "inet unspec transport", give: v2(0x21, 0x10), want: Header{Version: 2}},
		{name: "udp4", give: v2(0x21, 0x12, tcp4), want: Header{Version: 2}},
		{name: "udp6", give: v2(0x21, 0x22, tcp6), want: Header{Version: 2}},
		{name: "unix stream", give: v2(0x21, 0x31, make([]byte, 216)), want: Header{Version: 2}},
		{name: "unix dgram", give: v2(0x21, 0x32, make([]byte, 216)), want: Header{Version: 2}},

		{name: "empty", give: nil, wantErr: ErrIncomplete},
		{name: "part of the signature", give: v2Signature[:5], wantErr: ErrIncomplete},
		{name: "15 bytes", give: v2(0x21, 0x11, tcp4)[:15], wantErr: ErrIncomplete},
		{name: "no addresses yet", give: v2(0x21, 0x11, tcp4)[:16], wantErr: ErrIncomplete},
		{name: "part of the addresses", give: v2(0x21, 0x21, tcp6)[:30], wantErr: ErrIncomplete},
		{name: "part of the TLVs", give: v2(0x21, 0x11, tcp4, tlv(1, "h2"))[:30], wantErr: ErrIncomplete},
		{name: "local, part of its bytes", give: v2(0x20, 0x00, tcp4)[:20], wantErr: ErrIncomplete},

		{name: "bad signature", give: append([]byte("\r\n\r\n\x00\r\nQUIT\r"), 0x21, 0x11, 0, 12), wantErr: ErrInvalid},
		{name: "bad partial signature", give: []byte("\r\n\r\n\x01"), wantErr: ErrInvalid},
		{name: "v1 line", give: []byte(v1Line4), wantErr: ErrInvalid},
		{name: "version 1", give: v2(0x11, 0x11, tcp4), wantErr: ErrInvalid},
		{name: "version 3", give: v2(0x31, 0x11, tcp4), wantErr: ErrInvalid},
		{name: "version 0 local", give: v2(0x00, 0x00), wantErr: ErrInvalid},
		{name: "command 2", give: v2(0x22, 0x11, tcp4), wantErr: ErrInvalid},
		{name: "command 15", give: v2(0x2f, 0x11, tcp4), wantErr: ErrInvalid},
		{name: "family 4", give: v2(0x21, 0x41, tcp4), wantErr: ErrInvalid},
		{name: "transport 3", give: v2(0x21, 0x13, tcp4), wantErr: ErrInvalid},
		{name: "tcp4 short", give: v2(0x21, 0x11, tcp4[:11]), wantErr: ErrInvalid},
		{name: "tcp4 no addresses", give: v2(0x21, 0x11), wantErr: ErrInvalid},
		{name: "tcp6 with tcp4 addresses", give: v2(0x21, 0x21, tcp4), wantErr: ErrInvalid},
		{name: "tcp6 short", give: v2(0x21, 0x21, tcp6[:35]), wantErr: ErrInvalid},
		{name: "udp4 short", give: v2(0x21, 0x12, tcp4[:8]), wantErr: ErrInvalid},
		{name: "unix short", give: v2(0x21, 0x31, make([]byte, 215)), wantErr: ErrInvalid},
		{name: "short, known before the addresses", give: v2(0x21, 0x21, tcp4)[:16], wantErr: ErrInvalid},
		{name: "too long", give: v2(0x21, 0x11, tcp4, tlv(0x04, strings.Repeat("x", MaxV2Len-16-12-3+1))), wantErr: ErrInvalid},
		{name: "too long, known from the length", give: []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"), wantErr: ErrInvalid},
		{name: "local too long", give: []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x10\x01"), wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := ParseV2(tt.give)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("ParseV2(%q) error = %v; want %v", tt.give, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			wantN := tt.wantN
			if wantN == 0 {
				wantN = len(tt.give)
			}
			if h != tt.want || n != wantN {
				t.Errorf("ParseV2(%q) = %+v, %d; want %+v, %d", tt.give, h, n, tt.want, wantN)
			}
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		give string
		want int
	}{
		{"", -1},
		{"P", -1},
		{"PROX", -1},
		{"PROXY", 1},
		{"PROXY TCP4", 1},
		{"PROXI", 0},
		{"POST / HTTP/1.1", 0},
		{"PRI * HTTP/2.0", 0},
		{"GET / HTTP/1.1", 0},
		{"\x16\x03\x01", 0}, // a TLS ClientHello
		{"\r", -1},
		{"\r\n\r\n\x00\r\nQUI", -1},
		{"\r\n\r\n\x00\r\nQUIT\n", 2},
		{"\r\n\r\n\x00\r\nQUIT\r", 0},
		{"\r\n\r\nX", 0},
		{"\r\n", -1},
	}
	for _, tt := range tests {
		if got := sniff([]byte(tt.give)); got != tt.want {
			t.Errorf("sniff(%q) = %d; want %d", tt.give, got, tt.want)
		}
	}
}
