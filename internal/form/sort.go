package form

import (
	"bytes"
	"cmp"
	"slices"
)

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
	return bytes.Compare(p.name(a)[keyLen:], p.name(b)[keyLen:])
}

// insertionSortMax bounds SortByName's quadratic worst case (a request of
// MaxParams parameters in reverse order).
const insertionSortMax = 64
