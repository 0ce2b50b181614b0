package form

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Parsing never panics; a successful parse re-encoded (RFC 3986) and parsed
// again gives the same parameters.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"a=b&c=d", "Action=X&X=%41+%2B;~", "=x", "a&&b=", "%G1", "a=%FF", "x=%E2%82%AC", "Version=2016-11-15&Action=Describe&A.1=b", "b=1&a=2&b=3&a=4"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var p Params
		if problem, _ := p.Parse([]byte(raw)); problem != OK {
			return
		}
		var enc []byte
		for i := 0; i < p.Len(); i++ {
			if i > 0 {
				enc = append(enc, '&')
			}
			start := len(enc)
			enc = AppendEscaped(enc, p.Name(i))
			enc = append(enc, '=')
			enc = AppendEscaped(enc, p.Value(i))
			// The copied fast path must equal the encoding.
			if got := p.AppendCanonical(nil, i); !bytes.Equal(got, enc[start:]) {
				t.Fatalf("AppendCanonical(%d) = %q; want %q", i, got, enc[start:])
			}
		}
		var q Params
		if problem, _ := q.Parse(enc); problem != OK || q.Len() != p.Len() {
			t.Fatalf("re-encoded %q does not parse back (%v, %d vs %d params)", enc, problem, q.Len(), p.Len())
		}
		for i := 0; i < p.Len(); i++ {
			if !bytes.Equal(p.Name(i), q.Name(i)) || !bytes.Equal(p.Value(i), q.Value(i)) {
				t.Fatalf("param %d: %q=%q became %q=%q", i, p.Name(i), p.Value(i), q.Name(i), q.Value(i))
			}
		}
	})
}

// SortByName sorts by byte order of the decoded names and keeps the
// received order of equal names, with either algorithm (small or large);
// then Duplicate finds the first name given twice.
func FuzzSortByName(f *testing.F) {
	f.Add("b=1&a=2&b=3&a=4&%41=x&A=y")
	f.Add(strings.Repeat("z=1&y=2&x=3&", 30))
	f.Add(botocoreOrder)
	f.Add(boto2Order)
	// Names that tie on their first 16 bytes (nameKey), or differ from
	// another only by zero bytes, which pad keys.
	f.Add("Filter.10.Value.2=a&Filter.10.Value.1=b&Filter.10.Value.10=c&Filter.10.Value.1=d")
	f.Add("A%00=1&A=2&A%00%00=3&A%00B=4&A=5")
	f.Add("ABCDEFGHIJKLMNOP%00=1&ABCDEFGHIJKLMNOP=2&ABCDEFGHIJKLMNOPQ=3")
	f.Fuzz(func(t *testing.T, raw string) {
		var p Params
		if problem, _ := p.Parse([]byte(raw)); problem != OK {
			return
		}
		type nv struct{ name, value string }
		var want []nv
		for i := 0; i < p.Len(); i++ {
			want = append(want, nv{string(p.Name(i)), string(p.Value(i))})
		}
		slices.SortStableFunc(want, func(a, b nv) int { return strings.Compare(a.name, b.name) })
		p.SortByName()
		for i, w := range want {
			if string(p.Name(i)) != w.name || string(p.Value(i)) != w.value {
				t.Fatalf("after SortByName, param %d = %q=%q; want %q=%q", i, p.Name(i), p.Value(i), w.name, w.value)
			}
		}
		var wantDup string
		for i := 1; i < len(want) && wantDup == ""; i++ {
			if want[i].name == want[i-1].name {
				wantDup = want[i].name
			}
		}
		if dup := p.Duplicate(); string(dup) != wantDup || (dup == nil) != (wantDup == "") {
			t.Fatalf("Duplicate() = %q; want %q", dup, wantDup)
		}
	})
}

// AppendCanonicalQuery, whether it copies the raw input or encodes pair by
// pair, equals the sorted pairs' encodings joined by '&', with the skipped
// pair left out; the input may come in two parts (a query and a body).
func FuzzAppendCanonicalQuery(f *testing.F) {
	f.Add("A=1&B=2&C=3", "", 1)
	f.Add("A=1&B=2&C=3", "", 0)
	f.Add("A=1&B=2&C=3", "", 2)
	f.Add("A=1", "", 0)
	f.Add("B=1&A=2", "", -1)
	f.Add("A=a%20b&B=%7E&Signature=x%2B", "", 2)
	f.Add("A=1&&B=2", "", 0)
	f.Add("A&B=2", "", 1)
	f.Add("A=1", "B=2", 0)
	f.Add(strings.Repeat("a=1&", 70)+"b=2", "", 3)
	f.Add("B=1&C=2&D=3&A=4", "", 2)   // a run of received neighbours across the skipped pair
	f.Add("Z=1&A=1&B=2&&C=3", "", -1) // an empty item breaks a run
	f.Add("B=1&A&C=2", "", -1)        // "A" is not canonical as received
	f.Fuzz(func(t *testing.T, query, body string, skip int) {
		var p Params
		if problem, _ := p.Parse([]byte(query)); problem != OK {
			return
		}
		if problem, _ := p.Parse([]byte(body)); problem != OK {
			return
		}
		p.SortByName()
		if skip < -1 || skip >= p.Len() {
			skip = -1
		}
		var want []byte
		for i := 0; i < p.Len(); i++ {
			if i == skip {
				continue
			}
			if len(want) > 0 { // every pair is at least "n="
				want = append(want, '&')
			}
			want = AppendEscaped(want, p.Name(i))
			want = append(want, '=')
			want = AppendEscaped(want, p.Value(i))
		}
		if got := p.AppendCanonicalQuery([]byte("x"), skip); string(got) != "x"+string(want) {
			t.Fatalf("AppendCanonicalQuery(%d) = %q; want %q", skip, got[1:], want)
		}
	})
}

// Parse, fast paths and all, agrees with the plain reading of the format
// (split on '&', skip empty items, cut at the first '=', decode, check
// UTF-8) on the pairs and on the problem, for one input or two.
func FuzzParseMatchesReference(f *testing.F) {
	f.Add("a=b&c=d", "")
	f.Add("Action=X&X=%41+%2B;~", "Version=1")
	f.Add("=x", "")
	f.Add("a&&b=&", "c")
	f.Add("a=%4&b=1", "")
	f.Add("n%ZZ=1", "")
	f.Add("n=1", "%FF=2")
	f.Add("x=%E2%82%AC&y=%e2%82%ac", "z=%C3%28")
	f.Add(boto2Order, "")
	f.Add("", botocoreOrder)
	f.Fuzz(func(t *testing.T, query, body string) {
		type nv struct{ name, value string }
		var want []nv
		wantProblem, wantName := OK, ""
	inputs:
		for _, raw := range []string{query, body} {
			for item := range strings.SplitSeq(raw, "&") {
				if item == "" {
					continue
				}
				rawName, rawValue, _ := strings.Cut(item, "=")
				name, ok := AppendUnescaped(nil, []byte(rawName))
				switch {
				case strings.Contains(rawName, ";"):
					wantProblem = RawSemicolon
				case !ok:
					wantProblem = BadNameEncoding
				case len(name) == 0:
					wantProblem = EmptyName
				case !utf8.Valid(name):
					wantProblem = NameNotUTF8
				}
				if wantProblem != OK {
					break inputs
				}
				value, ok := AppendUnescaped(nil, []byte(rawValue))
				switch {
				case strings.Contains(rawValue, ";"):
					wantProblem, wantName = RawSemicolon, string(name)
				case !ok:
					wantProblem, wantName = BadValueEncoding, string(name)
				case !utf8.Valid(value):
					wantProblem, wantName = ValueNotUTF8, string(name)
				case len(want) == MaxParams:
					wantProblem = TooMany
				}
				if wantProblem != OK {
					break inputs
				}
				want = append(want, nv{string(name), string(value)})
			}
		}
		var p Params
		problem, name := p.Parse([]byte(query))
		if problem == OK {
			problem, name = p.Parse([]byte(body))
		}
		if problem != wantProblem || string(name) != wantName {
			t.Fatalf("Parse = %d, %q; want %d, %q", problem, name, wantProblem, wantName)
		}
		if problem != OK {
			for i := 0; i < p.Len(); i++ { // what was kept stays readable
				_, _ = p.Name(i), p.Value(i)
			}
			return
		}
		if p.Len() != len(want) {
			t.Fatalf("%d params; want %d", p.Len(), len(want))
		}
		for i, w := range want {
			if string(p.Name(i)) != w.name || string(p.Value(i)) != w.value {
				t.Fatalf("param %d = %q=%q; want %q=%q", i, p.Name(i), p.Value(i), w.name, w.value)
			}
			canonical := string(AppendEscaped(nil, []byte(w.name))) + "=" + string(AppendEscaped(nil, []byte(w.value)))
			if got := string(p.AppendCanonical(nil, i)); got != canonical {
				t.Fatalf("AppendCanonical(%d) = %q; want %q", i, got, canonical)
			}
		}
	})
}
