// Package form parses application/x-www-form-urlencoded data (a raw query
// string or a POST body) the way AWS signature checks need: raw bytes kept,
// pairs split on '&' only, '+' decoded to a space, and RFC 3986 re-encoding
// for canonical strings. Bad percent-encoding, invalid UTF-8 and a ';' not
// percent-encoded are refused: Python before 3.9.2 (under many backends)
// split pairs at ';' too, and would read other parameters than those
// verified; every real client sends %3B. It allocates only to grow its
// buffers, which callers reuse.
package form

import "bytes"

// MaxParams bounds the number of parameters in one request. AWS's largest
// calls reach about 1,100 (CreateTags: 1,000 resource IDs and 50 tags);
// the body size limit bounds the work anyway.
const MaxParams = 4096

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
	RawSemicolon             // a ';' not percent-encoded, in a name or value
)

// pair locates one decoded name=value. Names and values received with
// unreserved characters only are their own decoding: they stay in the
// input (Params.inputs[input]), and only the others are decoded into
// Params.buf. Offsets, not slices, so that growing buf never leaves a stale
// reference behind.
type pair struct {
	nameStart, nameEnd, valueStart, valueEnd uint32
	rawStart, rawEnd                         uint32 // the item in its input

	// nameKey holds the decoded name's first 16 bytes, big-endian, zero
	// padded: most names fit, so most comparisons are two integer compares
	// (calling bytes.Compare cost ~10 ns each, most of a sort).
	nameKey [2]uint64

	input        uint16 // index in Params.inputs; MaxParams bounds it
	valueInInput bool   // else in Params.buf
	// plainName: the name is unreserved characters only, its own encoding
	// and decoding: it stays in the input (else it is decoded into buf).
	plainName bool
	// rawCanonical: the received item is its own RFC 3986 encoding
	// (written name=value, the name plain, the value plain or with every
	// other byte percent-encoded in upper-case hex, as boto and most
	// clients send), so canonical strings copy it from the input, and a
	// run of such pairs, neighbours in both the input and the sorted
	// order, at once.
	rawCanonical bool
}

// Params is a list of decoded parameters. The zero value is empty and ready.
// It keeps references to the inputs it parsed until Reset.
type Params struct {
	buf    []byte
	pairs  []pair
	inputs [][]byte // each Parse input that gave pairs

	// raw is the one input every pair came from, when that input is
	// already the canonical query of its pairs in received order: every
	// pair rawCanonical, no empty items. If the pairs also arrived sorted
	// (boto 2 and euca2ools send them so, but for the Signature, which they
	// append), the canonical query is raw itself, less the pair left out:
	// copied in one or two pieces, not pair by pair.
	raw []byte
}

// Reset empties p, keeping its buffers.
func (p *Params) Reset() {
	clear(p.inputs) // no reference kept to the caller's buffers
	p.buf, p.pairs, p.inputs, p.raw = p.buf[:0], p.pairs[:0], p.inputs[:0], nil
}

// Len is the number of parameters.
func (p *Params) Len() int { return len(p.pairs) }

// Name is the decoded name of parameter i.
func (p *Params) Name(i int) []byte { return p.name(&p.pairs[i]) }

// Value is the decoded value of parameter i.
func (p *Params) Value(i int) []byte {
	q := &p.pairs[i]
	if q.valueInInput {
		return p.inputs[q.input][q.valueStart:q.valueEnd]
	}
	return p.buf[q.valueStart:q.valueEnd]
}

func (p *Params) name(q *pair) []byte {
	if q.plainName {
		return p.inputs[q.input][q.nameStart:q.nameEnd]
	}
	return p.buf[q.nameStart:q.nameEnd]
}

// Index is the position of the first parameter called name, or -1.
func (p *Params) Index(name string) int {
	for i := range p.pairs {
		if string(p.Name(i)) == name { // compared in place, no allocation
			return i
		}
	}
	return -1
}

// Duplicate returns a name given more than once, or nil. Parameters must be
// sorted by name. Verifiers that keep the last value (Keystone, webob) let an
// unsigned duplicate such as a second Action reach the backend.
func (p *Params) Duplicate() []byte {
	for i := 1; i < len(p.pairs); i++ {
		a, b := &p.pairs[i-1], &p.pairs[i]
		if a.nameKey == b.nameKey && bytes.Equal(p.name(a), p.name(b)) {
			return p.name(b)
		}
	}
	return nil
}
