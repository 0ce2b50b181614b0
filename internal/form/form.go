// Package form parses application/x-www-form-urlencoded data (a raw query
// string or a POST body) the way AWS signature checks need: raw bytes kept,
// pairs split on '&' only (';' is data: Go's url.ParseQuery drops such
// pairs), '+' decoded to a space, bad percent-encoding and invalid UTF-8
// refused, and RFC 3986 re-encoding for canonical strings. It allocates only
// to grow its buffers, which callers reuse.
package form

import (
	"bytes"
	"cmp"
	"encoding/binary"
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
// canonical says that buf[nameStart:canonEnd] is already the pair's RFC 3986
// encoding, so canonical strings copy it instead of encoding byte by byte.
// That holds when the name was received with unreserved characters only and
// the value either so too (then name '=' value are decoded and canonical at
// once: canonEnd is valueEnd) or with every other byte percent-encoded in
// upper-case hex, as boto and most clients send (then buf holds name '='
// the received value, and the decoded value follows it).
type pair struct {
	nameStart, nameEnd, valueStart, valueEnd, canonEnd uint32
	rawStart, rawEnd                                   uint32 // the item in the raw input it came from
	canonical                                          bool
	// rawCanonical: the received item is canonical as it is (canonical,
	// and written name=value), so a run of such pairs, neighbours in both
	// the input and the sorted order, is copied from the input at once.
	rawCanonical bool
	plainName    bool // the name is unreserved characters only: its own encoding

	// nameKey holds the decoded name's first 16 bytes, big-endian, zero
	// padded: most names fit, so most comparisons are two integer compares
	// (calling bytes.Compare cost ~10 ns each, most of a sort).
	nameKey [2]uint64
}

// Params is a list of decoded parameters. The zero value is empty and ready.
type Params struct {
	buf   []byte
	pairs []pair

	// raw is the one input every pair came from, when that input is
	// already the canonical query of its pairs in received order: every
	// pair canonical and written name=value, no empty items. If the pairs
	// also arrived sorted (boto 2 and euca2ools send them so, but for the
	// Signature, which they append), the canonical query is raw itself,
	// less the pair left out: copied in one or two pieces, not pair by pair.
	raw []byte
	// input is the one input every pair came from (nil if they came from
	// two): pairs neighbouring in it and in sorted order are copied in runs.
	input []byte
}

// Reset empties p, keeping its buffers.
func (p *Params) Reset() {
	p.buf, p.pairs, p.raw, p.input = p.buf[:0], p.pairs[:0], nil, nil
}

// Parse decodes raw and appends its pairs. On failure it returns the problem
// and, for value problems, the decoded name of the offending parameter
// (valid UTF-8; it aliases p's buffer).
func (p *Params) Parse(raw []byte) (Problem, []byte) {
	input, before, rawCanonical := raw, len(p.pairs), true
	for len(raw) > 0 {
		var item []byte
		rawStart := uint32(len(input) - len(raw))
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			item, raw = raw[:i], raw[i+1:]
			if len(raw) == 0 {
				rawCanonical = false // a trailing '&'
			}
		} else {
			item, raw = raw, nil
		}
		if len(item) == 0 {
			rawCanonical = false
			continue
		}
		name, value := item, []byte(nil)
		if i := bytes.IndexByte(item, '='); i >= 0 {
			name, value = item[:i], item[i+1:]
		} else {
			rawCanonical = false // the canonical query has "name="
		}
		q := pair{rawStart: rawStart, rawEnd: rawStart + uint32(len(item))}
		var ok bool
		q.nameStart = uint32(len(p.buf))
		plainName := isPlain(name)
		q.plainName = plainName
		if plainName {
			p.buf = append(p.buf, name...) // decoded, valid UTF-8 and encoded as it is
		} else if p.buf, ok = AppendUnescaped(p.buf, name); !ok {
			return BadNameEncoding, nil
		}
		q.nameEnd = uint32(len(p.buf))
		decodedName := p.buf[q.nameStart:q.nameEnd]
		q.nameKey = nameKey(decodedName)
		switch {
		case len(decodedName) == 0:
			return EmptyName, nil
		case !plainName && !utf8.Valid(decodedName):
			return NameNotUTF8, nil
		}
		p.buf = append(p.buf, '=')
		kind := classify(value)
		if plainName && kind == escapedCanonically {
			p.buf = append(p.buf, value...)
			q.canonEnd = uint32(len(p.buf))
			q.canonical = true
		}
		q.valueStart = uint32(len(p.buf))
		if kind == plain {
			p.buf = append(p.buf, value...)
		} else if p.buf, ok = AppendUnescaped(p.buf, value); !ok {
			return BadValueEncoding, p.buf[q.nameStart:q.nameEnd]
		}
		q.valueEnd = uint32(len(p.buf))
		if kind != plain && !utf8.Valid(p.buf[q.valueStart:q.valueEnd]) {
			return ValueNotUTF8, p.buf[q.nameStart:q.nameEnd]
		}
		if plainName && kind == plain {
			q.canonEnd, q.canonical = q.valueEnd, true
		}
		if len(p.pairs) >= MaxParams {
			return TooMany, nil
		}
		q.rawCanonical = q.canonical && q.rawEnd-q.rawStart == q.canonEnd-q.nameStart // "name" alone is not "name="
		rawCanonical = rawCanonical && q.canonical
		p.pairs = append(p.pairs, q)
	}
	switch {
	case len(p.pairs) == before: // nothing from this input
	case before == 0:
		p.input = input
		if rawCanonical {
			p.raw = input
		}
	default:
		p.raw, p.input = nil, nil // pairs from two inputs
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

// SortByName puts the parameters in byte order of their decoded names,
// keeping the received order of equal names.
func (p *Params) SortByName() {
	if len(p.pairs) > insertionSortMax {
		slices.SortStableFunc(p.pairs, func(a, b pair) int {
			switch {
			case p.lessName(&a, &b):
				return -1
			case p.lessName(&b, &a):
				return 1
			}
			return 0
		})
		return
	}
	// Clients send few parameters, in a few sorted runs: boto sorts them
	// but appends the Signature; botocore numbers filters, which byte order
	// sorts 1, 10, 11, 2..., puts Action and Version first and appends the
	// signing parameters. So an element is most often in order after its
	// predecessor, or else goes right after where the previous element was
	// inserted (botocore's filters each go before Version); a binary search
	// finds the place of the others.
	pairs := p.pairs
	last := 0 // where pairs[i-1] went
	for i := 1; i < len(pairs); i++ {
		q := pairs[i]
		if last < i-1 && !p.lessName(&q, &pairs[last]) && p.lessName(&q, &pairs[last+1]) {
			last++
		} else if !p.lessName(&q, &pairs[i-1]) {
			last = i
			continue
		} else {
			lo, hi := 0, i-1 // the first element after q: pairs[i-1] is one
			for lo < hi {
				m := int(uint(lo+hi) >> 1)
				if p.lessName(&q, &pairs[m]) {
					hi = m
				} else {
					lo = m + 1 // equal names keep their received order
				}
			}
			last = lo
		}
		copy(pairs[last+1:i+1], pairs[last:i])
		pairs[last] = q
	}
}

// lessName reports whether a's decoded name sorts before b's. The keys
// decide most comparisons.
func (p *Params) lessName(a, b *pair) bool {
	if a.nameKey[0] != b.nameKey[0] {
		return a.nameKey[0] < b.nameKey[0]
	}
	if a.nameKey[1] != b.nameKey[1] {
		return a.nameKey[1] < b.nameKey[1]
	}
	return p.compareNameTails(a, b) < 0
}

// compareNameTails compares names whose first keyLen bytes are equal, or
// of which one is shorter and the other continues with zero bytes: then
// the shorter one is a prefix of the other.
func (p *Params) compareNameTails(a, b *pair) int {
	lenA, lenB := a.nameEnd-a.nameStart, b.nameEnd-b.nameStart
	if min(lenA, lenB) <= keyLen {
		return cmp.Compare(lenA, lenB)
	}
	return bytes.Compare(p.buf[a.nameStart+keyLen:a.nameEnd], p.buf[b.nameStart+keyLen:b.nameEnd])
}

const keyLen = 16 // bytes of a name in pair.nameKey

// nameKey is the first keyLen bytes of name as two big-endian integers,
// zero-padded.
func nameKey(name []byte) [2]uint64 {
	if len(name) >= keyLen {
		return [2]uint64{binary.BigEndian.Uint64(name), binary.BigEndian.Uint64(name[8:])}
	}
	var b [keyLen]byte
	copy(b[:], name)
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// insertionSortMax bounds SortByName's quadratic worst case (a request of
// MaxParams parameters in reverse order).
const insertionSortMax = 64

// Duplicate returns a name given more than once, or nil. Parameters must be
// sorted by name. Verifiers that keep the last value (Keystone, webob) let an
// unsigned duplicate such as a second Action reach the backend.
func (p *Params) Duplicate() []byte {
	for i := 1; i < len(p.pairs); i++ {
		a, b := &p.pairs[i-1], &p.pairs[i]
		if a.nameKey == b.nameKey && bytes.Equal(p.Name(i-1), p.Name(i)) {
			return p.Name(i)
		}
	}
	return nil
}

// AppendCanonical appends parameter i as a canonical string has it: the
// RFC 3986 encodings of its name and value joined by '='.
func (p *Params) AppendCanonical(dst []byte, i int) []byte {
	q := p.pairs[i]
	if q.canonical {
		return append(dst, p.buf[q.nameStart:q.canonEnd]...)
	}
	if q.plainName {
		dst = append(dst, p.Name(i)...)
	} else {
		dst = AppendEscaped(dst, p.Name(i))
	}
	dst = append(dst, '=')
	return AppendEscaped(dst, p.Value(i))
}

// AppendCanonicalQuery appends the canonical query of every parameter but
// parameter skip (-1: none), sorted by name: RFC 3986-encoded pairs joined
// by '&'. Parameters must be sorted (SortByName).
func (p *Params) AppendCanonicalQuery(dst []byte, skip int) []byte {
	if p.raw != nil && p.inRawOrder(skip) {
		raw := p.raw
		if skip < 0 {
			return append(dst, raw...)
		}
		start, end := int(p.pairs[skip].rawStart), int(p.pairs[skip].rawEnd)
		switch {
		case start == 0 && end == len(raw):
			return dst
		case start == 0:
			return append(dst, raw[end+1:]...)
		case end == len(raw):
			return append(dst, raw[:start-1]...)
		}
		dst = append(dst, raw[:start]...)
		return append(dst, raw[end+1:]...)
	}
	first := true
	for i := 0; i < len(p.pairs); {
		if i == skip {
			i++
			continue
		}
		if !first {
			dst = append(dst, '&')
		}
		first = false
		q := p.pairs[i]
		if p.input == nil || !q.rawCanonical {
			dst = p.AppendCanonical(dst, i)
			i++
			continue
		}
		// Extend the run while the next sorted pair is also the next item
		// received (one '&' between), and copy the run with its '&'s.
		end, j := q.rawEnd, i+1
		for ; j < len(p.pairs) && j != skip && p.pairs[j].rawCanonical && p.pairs[j].rawStart == end+1; j++ {
			end = p.pairs[j].rawEnd
		}
		dst = append(dst, p.input[q.rawStart:end]...)
		i = j
	}
	return dst
}

// inRawOrder reports whether the pairs but skip are in the order they
// were received.
func (p *Params) inRawOrder(skip int) bool {
	last := -1
	for i, q := range p.pairs {
		if i != skip {
			if int(q.rawStart) < last {
				return false
			}
			last = int(q.rawStart)
		}
	}
	return true
}

// AppendUnescaped appends the form-decoded s to dst. It reports false for a
// '%' not followed by two hex digits.
func AppendUnescaped(dst, s []byte) ([]byte, bool) {
	// Decoding never lengthens: grow once, then store by index.
	n := len(dst)
	dst = slices.Grow(dst, len(s))[:n+len(s)]
	out := dst[n:]
	w := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			out[w] = ' '
		case '%':
			if i+2 >= len(s) {
				return dst[:n+w], false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return dst[:n+w], false
			}
			out[w] = hi<<4 | lo
			i += 2
		default:
			out[w] = c
		}
		w++
	}
	return dst[:n+w], true
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
	// Grow once for the worst case, then store by index: a third faster
	// than an append per byte on values that need escaping.
	n := len(dst)
	dst = slices.Grow(dst, 3*len(s))
	out := dst[n : n+3*len(s)]
	w := 0
	for _, c := range s {
		if isUnreserved(c) {
			out[w] = c
			w++
			continue
		}
		out[w], out[w+1], out[w+2] = '%', hexUpper[c>>4], hexUpper[c&15]
		w += 3
	}
	return dst[:n+w]
}

func isUnreserved(c byte) bool { return unreserved[c] }

// unreserved is RFC 3986's unreserved set, as a table: checking a whole
// parameter costs one load per byte.
var unreserved = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// isPlain reports whether s holds unreserved characters only: then its
// form decoding and its RFC 3986 encoding are both s itself. It is
// classify(s) == plain, kept apart because it inlines: parameter names
// use it, and calling classify instead cost Parse 2-5%.
func isPlain(s []byte) bool {
	for _, c := range s {
		if !unreserved[c] {
			return false
		}
	}
	return true
}

// encoding is how a received name or value relates to its RFC 3986 encoding.
type encoding uint8

const (
	plain              encoding = iota // unreserved characters only: it is its own encoding and decoding
	escapedCanonically                 // also %XX (upper-case hex) for each reserved byte: it is its own encoding
	otherwise                          // '+', lower-case hex, an escaped unreserved byte, or a bad escape
)

// classify reads s once to tell which fast path its encoding allows.
func classify(s []byte) encoding {
	e := plain
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved[c] {
			continue
		}
		if c != '%' || i+2 >= len(s) {
			return otherwise
		}
		hi, lo := upperHex[s[i+1]], upperHex[s[i+2]]
		if hi < 0 || lo < 0 || unreserved[byte(hi)<<4|byte(lo)] {
			return otherwise
		}
		e = escapedCanonically
		i += 2
	}
	return e
}

// upperHex is the value of an upper-case hex digit, -1 for any other byte.
var upperHex = func() (t [256]int8) {
	for c := range 256 {
		switch {
		case '0' <= c && c <= '9':
			t[c] = int8(c - '0')
		case 'A' <= c && c <= 'F':
			t[c] = int8(c - 'A' + 10)
		default:
			t[c] = -1
		}
	}
	return t
}()
