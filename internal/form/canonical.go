package form

import "slices"

// AppendCanonical appends parameter i as a canonical string has it: the
// RFC 3986 encodings of its name and value joined by '='.
func (p *Params) AppendCanonical(dst []byte, i int) []byte {
	q := &p.pairs[i]
	if q.rawCanonical {
		return append(dst, p.inputs[q.input][q.rawStart:q.rawEnd]...)
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
		q := &p.pairs[i]
		if !q.rawCanonical {
			dst = p.AppendCanonical(dst, i)
			i++
			continue
		}
		// Extend the run while the next sorted pair is also the next item
		// received (one '&' between), and copy the run with its '&'s.
		end, j := q.rawEnd, i+1
		for ; j < len(p.pairs) && j != skip; j++ {
			next := &p.pairs[j]
			if !next.rawCanonical || next.input != q.input || next.rawStart != end+1 {
				break
			}
			end = next.rawEnd
		}
		dst = append(dst, p.inputs[q.input][q.rawStart:end]...)
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
