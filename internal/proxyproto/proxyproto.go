// Package proxyproto reads the PROXY protocol header (version 1, text, and
// version 2, binary) that a load balancer such as haproxy (send-proxy,
// send-proxy-v2) puts in front of a relayed TCP connection, so that the
// connection reports the original client as its remote address.
//
// Specification: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
//
// The parsers here are pure functions over bytes; NewListener applies them
// to the connections of trusted peers.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

var (
	// ErrNoHeader: a trusted peer's connection does not start with a header.
	ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")
	// ErrInvalid: the header is malformed; the wrapping error says how.
	ErrInvalid = errors.New("proxyproto: invalid header")
	// ErrIncomplete: the bytes given do not hold a whole header yet; more
	// are needed to accept or reject it.
	ErrIncomplete = errors.New("proxyproto: incomplete header")
)

// Header is a parsed PROXY protocol header.
type Header struct {
	Version int // 1 or 2
	// Source and Destination are the relayed connection's client and
	// server ends. Both are the zero AddrPort when the header carries no
	// address to use: v1 UNKNOWN; v2 LOCAL (the proxy's own connection, a
	// health check); v2 PROXY for anything but TCP over IPv4 or IPv6. The
	// connection then keeps its real endpoints, as the specification says.
	Source, Destination netip.AddrPort
}

const (
	// MaxV1Len is the longest v1 line, CRLF included: "PROXY UNKNOWN", two
	// full IPv6 addresses and two 5-digit ports.
	MaxV1Len = 107
	// MaxV2Len bounds a v2 header: 16 fixed bytes and at most 4 KiB of
	// addresses and TLVs. The format allows 64 KiB, but the addresses take at
	// most 216 bytes and the TLVs senders emit (ALPN, SNI, unique ID ≤ 128
	// bytes, SSL version/CN/cipher, AWS or GCP endpoint IDs) a few hundred
	// more; 4 KiB even holds a typical PEM client certificate sent as a
	// custom TLV. Every trusted connection buffers its header, so the bound
	// is memory per connection that a faulty sender cannot raise.
	MaxV2Len = 16 + 4096

	v2FixedLen = 16
)

var (
	v1Prefix    = []byte("PROXY")
	v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// ParseV1 parses the v1 line at the start of b:
//
//	PROXY TCP4|TCP6 <src addr> <dst addr> <src port> <dst port>\r\n
//	PROXY UNKNOWN[ <anything>]\r\n
//
// It returns the header and its length in bytes. Validation is strict:
// single spaces, addresses of the announced family (IPv4 dotted decimal
// without leading zeros, IPv6 without a zone), ports 0-65535 in decimal
// without sign or leading zero, and a CRLF within the first MaxV1Len bytes.
func ParseV1(b []byte) (Header, int, error) {
	if !bytes.HasPrefix(b, v1Prefix[:min(len(b), len(v1Prefix))]) {
		return Header{}, 0, invalid("v1: does not start with PROXY")
	}
	end := bytes.IndexByte(b[:min(len(b), MaxV1Len)], '\n')
	if end < 0 {
		if len(b) >= MaxV1Len {
			return Header{}, 0, invalid("v1: no CRLF within %d bytes", MaxV1Len)
		}
		return Header{}, 0, ErrIncomplete
	}
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, invalid("v1: line ends with a bare LF")
	}
	n := end + 1
	line := b[:end-1]

	rest, ok := bytes.CutPrefix(line, []byte("PROXY "))
	if !ok {
		return Header{}, 0, invalid("v1: %q does not start with \"PROXY \"", line)
	}
	if u, ok := bytes.CutPrefix(rest, []byte("UNKNOWN")); ok && (len(u) == 0 || u[0] == ' ') {
		// "the receiver must ignore anything presented before the CRLF"
		return Header{Version: 1}, n, nil
	}
	var f [5][]byte
	for i := range f {
		var found bool
		f[i], rest, found = bytes.Cut(rest, []byte(" "))
		if found != (i < len(f)-1) {
			return Header{}, 0, invalid("v1: %q has not 6 space-separated fields", line)
		}
	}
	var is4 bool
	switch string(f[0]) {
	case "TCP4":
		is4 = true
	case "TCP6":
	default:
		return Header{}, 0, invalid("v1: unknown protocol %q", f[0])
	}
	src, err := parseV1Addr(f[1], is4)
	if err != nil {
		return Header{}, 0, err
	}
	dst, err := parseV1Addr(f[2], is4)
	if err != nil {
		return Header{}, 0, err
	}
	sport, err := parseV1Port(f[3])
	if err != nil {
		return Header{}, 0, err
	}
	dport, err := parseV1Port(f[4])
	if err != nil {
		return Header{}, 0, err
	}
	return Header{
		Version:     1,
		Source:      netip.AddrPortFrom(src, sport),
		Destination: netip.AddrPortFrom(dst, dport),
	}, n, nil
}

func parseV1Addr(b []byte, is4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	switch {
	case err != nil:
		return netip.Addr{}, invalid("v1: address %q: %v", b, err)
	case is4 && !a.Is4():
		return netip.Addr{}, invalid("v1: %q is not an IPv4 address", b)
	case !is4 && !a.Is6():
		return netip.Addr{}, invalid("v1: %q is not an IPv6 address", b)
	case a.Zone() != "":
		return netip.Addr{}, invalid("v1: address %q has a zone", b)
	}
	return a, nil
}

func parseV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, invalid("v1: port %q", b)
	}
	var p uint32
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, invalid("v1: port %q", b)
		}
		p = p*10 + uint32(c-'0')
	}
	if p > 65535 {
		return 0, invalid("v1: port %q", b)
	}
	return uint16(p), nil
}

// ParseV2 parses the v2 header at the start of b and returns it with its
// length in bytes, TLVs included (they are skipped, not interpreted). The
// version must be 2, the command LOCAL or PROXY, the family and transport
// values assigned ones, the length at most MaxV2Len-16 and at least the
// size of the addresses the family implies.
func ParseV2(b []byte) (Header, int, error) {
	if !bytes.HasPrefix(b, v2Signature[:min(len(b), len(v2Signature))]) {
		return Header{}, 0, invalid("v2: bad signature")
	}
	if len(b) < v2FixedLen {
		return Header{}, 0, ErrIncomplete
	}
	ver, cmd := b[12]>>4, b[12]&0xf
	if ver != 2 {
		return Header{}, 0, invalid("v2: version %d", ver)
	}
	n := v2FixedLen + int(binary.BigEndian.Uint16(b[14:16]))
	if n > MaxV2Len {
		return Header{}, 0, invalid("v2: %d bytes, more than %d", n, MaxV2Len)
	}
	h := Header{Version: 2}
	switch cmd {
	case 0x0:
		// LOCAL: "the receiver must use the real connection endpoints and
		// discard the protocol block including the family which is ignored."
		if len(b) < n {
			return Header{}, 0, ErrIncomplete
		}
		return h, n, nil
	case 0x1: // PROXY
	default:
		return Header{}, 0, invalid("v2: command %#x", cmd)
	}
	fam, proto := b[13]>>4, b[13]&0xf
	if fam > 0x3 || proto > 0x2 {
		return Header{}, 0, invalid("v2: family and transport %#02x", b[13])
	}
	need := 0
	if proto != 0 {
		need = [...]int{0, 12, 36, 216}[fam] // UNSPEC, INET, INET6, UNIX
	}
	if n-v2FixedLen < need {
		return Header{}, 0, invalid("v2: %d address bytes for family and transport %#02x, want %d", n-v2FixedLen, b[13], need)
	}
	if len(b) < n {
		return Header{}, 0, ErrIncomplete
	}
	a := b[v2FixedLen:n]
	switch b[13] {
	case 0x11: // TCP over IPv4
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[0:4])), binary.BigEndian.Uint16(a[8:10]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[4:8])), binary.BigEndian.Uint16(a[10:12]))
	case 0x21: // TCP over IPv6
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[0:16])), binary.BigEndian.Uint16(a[32:34]))
		h.Destination = netip.AddrPortFrom(netip.AddrFrom16([16]byte(a[16:32])), binary.BigEndian.Uint16(a[34:36]))
	}
	// Anything else (UNSPEC, UDP, UNIX) is valid but has no TCP endpoints to
	// report: the connection keeps its real ones, as with LOCAL.
	return h, n, nil
}

// sniff tells from the first bytes which header version b starts with: 1,
// 2, 0 for none, or -1 while b is too short to say.
func sniff(b []byte) int {
	switch {
	case len(b) == 0:
		return -1
	case b[0] == v1Prefix[0]:
		if !bytes.HasPrefix(v1Prefix, b[:min(len(b), len(v1Prefix))]) {
			return 0
		}
		if len(b) < len(v1Prefix) {
			return -1
		}
		return 1
	case b[0] == v2Signature[0]:
		if !bytes.HasPrefix(v2Signature, b[:min(len(b), len(v2Signature))]) {
			return 0
		}
		if len(b) < len(v2Signature) {
			return -1
		}
		return 2
	}
	return 0
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
