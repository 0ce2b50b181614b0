package sigv2

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"encoding/base64"
	"slices"
	"strings"
	"time"
)

// Defaults for Limits fields left zero.
const (
	DefaultTimestampWindow = 300 * time.Second // nova's ec2_timestamp_expiry
	DefaultMaxExpiresAhead = 15 * time.Minute  // AWS refuses requests more than 15 min ahead
)

// Limits are the operator's freshness rules.
type Limits struct {
	// TimestampWindow is how far Timestamp may be from now, either way.
	TimestampWindow time.Duration
	// MaxExpiresAhead is how far in the future Expires may be.
	MaxExpiresAhead time.Duration
	// DisableSHA1 refuses HmacSHA1 signatures.
	DisableSHA1 bool
}

// Verify checks the signature against key for each host candidate (the Host
// header lowercased, then without its port: boto 2 signs without it), then
// checks freshness against now. It allocates nothing on success or on a
// signature mismatch.
func (r *Request) Verify(key *Key, now time.Time, limits Limits) error {
	if r.method2 == HmacSHA1 && limits.DisableSHA1 {
		return r.errorf(CodeUnsupportedSignatureMethod, "SignatureMethod", "SignatureMethod HmacSHA1 is disabled on this endpoint: sign with HmacSHA256")
	}
	var want [64]byte
	n, ok := r.decodeSignature(&want)
	if !ok {
		return r.errorf(CodeMalformedSignature, "Signature", "the Signature parameter is not valid base64")
	}
	// The string to sign is built once, contiguous, and hashed in one Write:
	// several small Writes cost more than the hashing of their bytes. The
	// portless candidate is the same string with the port cut out in place.
	sts, hostEnd := r.buildStringToSign()
	k := key.forMethod(r.method2)
	matched := subtle.ConstantTimeCompare(r.mac.Sum(k, sts), want[:n]) == 1
	if !matched {
		if cut := r.portLen(); cut > 0 {
			copy(sts[hostEnd-cut:], sts[hostEnd:])
			sts = sts[:len(sts)-cut]
			matched = subtle.ConstantTimeCompare(r.mac.Sum(k, sts), want[:n]) == 1
		}
	}
	if !matched {
		return r.errorf(CodeSignatureMismatch, "Signature", "the request signature we calculated does not match the signature you provided")
	}
	return r.checkFreshness(now, limits)
}

// AppendMAC appends the MAC the client sent (the Signature parameter,
// decoded) to dst: what identifies a request's signature, where its text
// does not. ok is false if it does not decode.
func (r *Request) AppendMAC(dst []byte) (_ []byte, ok bool) {
	var mac [64]byte
	n, ok := r.decodeSignature(&mac)
	return append(dst, mac[:n]...), ok
}

// decodeSignature base64-decodes the Signature parameter. Comparing decoded
// bytes matters: base64 text is not unique (padding, trailing bits). A space
// is read as '+': a client that forgot to percent-encode the signature sent a
// '+' that form decoding turned into a space (boto/boto#916).
func (r *Request) decodeSignature(dst *[64]byte) (int, bool) {
	sig := r.paramValue(r.signature)
	// 44 characters encode a 32-byte MAC, the longest here; a few more allow
	// the CR/LF Go's decoder skips, and keep the decoded size under len(dst).
	if len(sig) == 0 || len(sig) > 48 {
		return 0, false
	}
	if bytes.IndexByte(sig, ' ') >= 0 {
		r.scratch = append(r.scratch[:0], sig...)
		for i, c := range r.scratch {
			if c == ' ' {
				r.scratch[i] = '+'
			}
		}
		sig = r.scratch
	}
	if decodeMAC256(dst, sig) {
		return sha256Size, true
	}
	n, err := base64.StdEncoding.Decode(dst[:], sig)
	return n, err == nil
}

const sha256Size = 32

// decodeMAC256 decodes sig when it is the usual form of a 32-byte MAC: 43
// alphabet characters and '='. It decodes as encoding/base64 does (the
// unused low bits of the last character are ignored, as its non-strict
// decoding does) at a third of its cost, which is a tenth of a small
// request's verification. Anything else is left to encoding/base64. The
// signature is the client's, public: table lookups are fine here.
func decodeMAC256(dst *[64]byte, sig []byte) bool {
	if len(sig) != 44 || sig[43] != '=' {
		return false
	}
	var bad byte
	for i := 0; i < 40; i += 4 {
		a, b, c, d := base64Value[sig[i]], base64Value[sig[i+1]], base64Value[sig[i+2]], base64Value[sig[i+3]]
		bad |= a | b | c | d
		o := i / 4 * 3
		dst[o] = a<<2 | b>>4
		dst[o+1] = b<<4 | c>>2
		dst[o+2] = c<<6 | d
	}
	a, b, c := base64Value[sig[40]], base64Value[sig[41]], base64Value[sig[42]]
	bad |= a | b | c
	dst[30] = a<<2 | b>>4
	dst[31] = b<<4 | c>>2
	return bad&invalidBase64 == 0
}

// invalidBase64 marks, in base64Value, a byte outside the standard alphabet.
const invalidBase64 = 0x80

// base64Value is the 6-bit value of each standard base64 character.
var base64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = invalidBase64
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// buildStringToSign writes, into r.sts, the string to sign with the Host
// header lowercased (port included, if any), and returns it with the index
// just past the host. The canonical query is every parameter but Signature,
// in byte order of name, RFC 3986-encoded, joined with '&'.
func (r *Request) buildStringToSign() (sts []byte, hostEnd int) {
	r.hostLower = appendLower(r.hostLower[:0], r.host)
	b := append(r.sts[:0], r.method...)
	b = append(b, '\n')
	b = append(b, r.hostLower...)
	hostEnd = len(b)
	b = append(b, '\n')
	b = append(b, r.path...)
	b = append(b, '\n')
	b = r.params.AppendCanonicalQuery(b, r.signature)
	r.sts = b
	return b, hostEnd
}

// portLen is the length of the ":PORT" ending the lowercased Host, or 0:
// what the portless host candidate leaves out of the string to sign.
func (r *Request) portLen() int {
	if port := portStart(r.hostLower); port >= 0 {
		return len(r.hostLower) - port
	}
	return 0
}

// portStart is the index of the ':' before a port in host, or -1.
func portStart(host []byte) int {
	i := bytes.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if host[0] == '[' { // [IPv6]:port
		if host[i-1] != ']' {
			return -1
		}
		return i
	}
	if bytes.IndexByte(host, ':') != i { // bare IPv6 literal: no port
		return -1
	}
	return i
}

func appendLower(dst, s []byte) []byte {
	if !hasUpper(s) { // hosts are mostly lower-case already: one copy
		return append(dst, s...)
	}
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func hasUpper(s []byte) bool {
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

func (r *Request) checkFreshness(now time.Time, limits Limits) error {
	window := cmp.Or(limits.TimestampWindow, DefaultTimestampWindow)
	maxAhead := cmp.Or(limits.MaxExpiresAhead, DefaultMaxExpiresAhead)
	if r.isExpires {
		switch {
		case !now.Before(r.when):
			return r.errorf(CodeExpired, "Expires", "request has expired: Expires "+r.when.Format(time.RFC3339)+" is not after the server time "+now.UTC().Format(time.RFC3339))
		case r.when.Sub(now) > maxAhead:
			return r.errorf(CodeNotYetValid, "Expires", "Expires "+r.when.Format(time.RFC3339)+" is more than "+maxAhead.String()+" after the server time "+now.UTC().Format(time.RFC3339))
		}
		return nil
	}
	switch d := now.Sub(r.when); {
	case d > window:
		return r.errorf(CodeExpired, "Timestamp", "request has expired: Timestamp "+r.when.Format(time.RFC3339)+" is more than "+window.String()+" before the server time "+now.UTC().Format(time.RFC3339)+"; check the client clock")
	case d < -window:
		return r.errorf(CodeNotYetValid, "Timestamp", "Timestamp "+r.when.Format(time.RFC3339)+" is more than "+window.String()+" after the server time "+now.UTC().Format(time.RFC3339)+"; check the client clock")
	}
	return nil
}

// AppendStringToSign appends the string to sign for host candidate i (0:
// the Host header lowercased; 1: the same without its port, nothing if it
// has none), so a SignatureDoesNotMatch answer can show what the server
// computed. It holds no secret.
func (r *Request) AppendStringToSign(dst []byte, i int) []byte {
	sts, hostEnd := r.buildStringToSign()
	if i == 0 {
		return append(dst, sts...)
	}
	cut := r.portLen()
	if cut == 0 {
		return dst
	}
	dst = append(dst, sts[:hostEnd-cut]...)
	return append(dst, sts[hostEnd:]...)
}

// Pair is one request parameter, for signing.
type Pair struct{ Name, Value string }

// StringToSign builds the string to sign for a request a client is about to
// send. The Signature parameter, if present, is left out; host is lowercased.
func StringToSign(method, host, path string, params []Pair) []byte {
	sorted := slices.Clone(params)
	slices.SortFunc(sorted, func(a, b Pair) int { return strings.Compare(a.Name, b.Name) })
	if path == "" {
		path = "/"
	}
	b := make([]byte, 0, 256)
	b = append(b, method...)
	b = append(b, '\n')
	b = appendLower(b, []byte(host))
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	first := true
	for _, p := range sorted {
		if p.Name == "Signature" {
			continue
		}
		if !first {
			b = append(b, '&')
		}
		first = false
		b = AppendEscaped(b, []byte(p.Name))
		b = append(b, '=')
		b = AppendEscaped(b, []byte(p.Value))
	}
	return b
}
