// Package form parses application/x-www-form-urlencoded data (a raw query
// string or a POST body) the way AWS signature checks need: raw bytes kept,
// pairs split on '&' only (';' is data: Go's url.ParseQuery drops such
// pairs), '+' decoded to a space, bad percent-encoding and invalid UTF-8
// refused, and RFC 3986 re-encoding for canonical strings. It allocates only
// to grow its buffers, which callers reuse.
package form

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// MaxParams bounds the number of parameters in one request; EC2 calls with
// many filters stay far below it.
const MaxParams = 1000

// Problem says why Parse refused its input.
type Problem uint8

const (
	OK               Problem = iota
	BadNameEncoding          // a name has invalid percent-encoding
	EmptyName                // "=value" or a lone "="
	NameNotUTF8              // a decoded name is not UTF-8
	BadValueEncoding         // a value has invalid percent-encoding
	ValueNotUTF8             // a decoded value is not UTF-8
	TooMany                  // more than MaxParams pairs
)

// pair locates one decoded name=value inside Params.buf. Offsets, not
// slices, so that growing buf never leaves a stale reference behind.
type pair struct{ nameStart, nameEnd, valueStart, valueEnd uint32 }

// Params is a list of decoded parameters. The zero value is empty and ready.
type Params struct {
	buf   []byte
	pairs []pair
}

// Reset empties p, keeping its buffers.
func (p *Params) Reset() {
	p.buf, p.pairs = p.buf[:0], p.pairs[:0]
}

// Parse decodes raw and appends its pairs. On failure it returns the problem
// and, for value problems, the decoded name of the offending parameter
// (valid UTF-8; it aliases p's buffer).
func (p *Params) Parse(raw []byte) (Problem, []byte) {
	for len(raw) > 0 {
		var item []byte
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			item, raw = raw[:i], raw[i+1:]
		} else {
			item, raw = raw, nil
		}
		if len(item) == 0 {
			continue
		}
		name, value := item, []byte(nil)
		if i := bytes.IndexByte(item, '='); i >= 0 {
			name, value = item[:i], item[i+1:]
		}
		var q pair
		var ok bool
		q.nameStart = uint32(len(p.buf))
		if p.buf, ok = AppendUnescaped(p.buf, name); !ok {
			return BadNameEncoding, nil
		}
		q.nameEnd = uint32(len(p.buf))
		decodedName := p.buf[q.nameStart:q.nameEnd]
		switch {
		case len(decodedName) == 0:
			return EmptyName, nil
		case !utf8.Valid(decodedName):
			return NameNotUTF8, nil
		}
		q.valueStart = q.nameEnd
		if p.buf, ok = AppendUnescaped(p.buf, value); !ok {
			return BadValueEncoding, p.buf[q.nameStart:q.nameEnd]
		}
		q.valueEnd = uint32(len(p.buf))
		if !utf8.Valid(p.buf[q.valueStart:q.valueEnd]) {
			return ValueNotUTF8, p.buf[q.nameStart:q.nameEnd]
		}
		if len(p.pairs) >= MaxParams {
			return TooMany, nil
		}
		p.pairs = append(p.pairs, q)
	}
	return OK, nil
}

// Len is the number of parameters.
func (p *Params) Len() int { return len(p.pairs) }

// Name is the decoded name of parameter i.
func (p *Params) Name(i int) []byte { q := p.pairs[i]; return p.buf[q.nameStart:q.nameEnd] }

// Value is the decoded value of parameter i.
func (p *Params) Value(i int) []byte { q := p.pairs[i]; return p.buf[q.valueStart:q.valueEnd] }

// Index is the position of the first parameter called name, or -1.
func (p *Params) Index(name string) int {
	for i := range p.pairs {
		if string(p.Name(i)) == name { // compared in place, no allocation
			return i
		}
	}
	return -1
}

// SortByName puts the parameters in byte order of their decoded names.
func (p *Params) SortByName() {
	buf := p.buf
	slices.SortStableFunc(p.pairs, func(a, b pair) int {
		return bytes.Compare(buf[a.nameStart:a.nameEnd], buf[b.nameStart:b.nameEnd])
	})
}

// Duplicate returns a name given more than once, or nil. Parameters must be
// sorted by name. Verifiers that keep the last value (Keystone, webob) let an
// unsigned duplicate such as a second Action reach the backend.
func (p *Params) Duplicate() []byte {
	for i := 1; i < len(p.pairs); i++ {
		if bytes.Equal(p.Name(i-1), p.Name(i)) {
			return p.Name(i)
		}
	}
	return nil
}

// AppendUnescaped appends the form-decoded s to dst. It reports false for a
// '%' not followed by two hex digits.
func AppendUnescaped(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) {
				return dst, false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// AppendEscaped appends s percent-encoded as RFC 3986 requires for AWS
// canonical strings: only A-Z a-z 0-9 - _ . ~ stay as they are, everything
// else becomes %XX with upper-case hex (a space is %20, never '+').
func AppendEscaped(dst []byte, s []byte) []byte {
	const hexUpper = "0123456789ABCDEF"
	for _, c := range s {
		if isUnreserved(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexUpper[c>>4], hexUpper[c&15])
	}
	return dst
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
