package form

import "testing"

// scanValue classifies a value and finds its end, whether it ends the input
// or a '&' follows it.
func TestScanValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want encoding
	}{
		{"", plain},
		{"2010-08-31", plain},
		{"a~b_c.d-e", plain},
		{"2013-12-31T14%3A34%3A25Z", escapedCanonically},
		{"%C3%A9%E4%B8%AD", escapedCanonically},
		{"%20%20", escapedCanonically},
		{"14%3a34", otherwise},      // lower-case hex: the encoding differs
		{"%41", otherwise},          // 'A' escaped: the encoding is "A"
		{"%7E", otherwise},          // '~' escaped, as old Pythons did
		{"a+b", otherwise},          // '+' is a space: the encoding is %20
		{"a%2", otherwise},          // truncated escape
		{"a%", otherwise},           //
		{"%G0", otherwise},          // not hex
		{"a;b", otherwise},          // reserved, unescaped
		{"a%3Bb;", otherwise},       // one unescaped reserved byte spoils it
		{"\xff", otherwise},         // raw non-ASCII
		{"%FF", escapedCanonically}, // canonical text; Parse refuses it as UTF-8
		{"a%4", otherwise},          // an escape cut short by the '&' that may follow
		{"%", otherwise},            //
	} {
		for _, tail := range []string{"", "&", "&B=%41", "&&"} {
			s := "A=" + tc.in + tail
			if got, end := scanValue([]byte(s), 2); got != tc.want || end != len(s)-len(tail) {
				t.Errorf("scanValue(%q, 2) = %d, %d; want %d, %d", s, got, end, tc.want, len(s)-len(tail))
			}
		}
	}
}

// Each fast path must give the decoded value and the canonical encoding that
// the slow path gives.
func TestParseKeepsCanonicalText(t *testing.T) {
	for _, tc := range []struct {
		raw, name, value, canonical string
	}{
		{"Version=2010-08-31", "Version", "2010-08-31", "Version=2010-08-31"},
		{"Timestamp=2013-12-31T14%3A34%3A25Z", "Timestamp", "2013-12-31T14:34:25Z", "Timestamp=2013-12-31T14%3A34%3A25Z"},
		{"Timestamp=2013-12-31T14%3a34%3a25Z", "Timestamp", "2013-12-31T14:34:25Z", "Timestamp=2013-12-31T14%3A34%3A25Z"},
		{"Filter.1.Value.1=a+b%7Ec", "Filter.1.Value.1", "a b~c", "Filter.1.Value.1=a%20b~c"},
		{"Filter.1.Name=tag%3AName", "Filter.1.Name", "tag:Name", "Filter.1.Name=tag%3AName"},
		{"tag%3AName=x%20y", "tag:Name", "x y", "tag%3AName=x%20y"},
		{"Empty=", "Empty", "", "Empty="},
		{"NoValue", "NoValue", "", "NoValue="},
	} {
		var p Params
		if problem, _ := p.Parse([]byte(tc.raw)); problem != OK || p.Len() != 1 {
			t.Fatalf("Parse(%q) = %v with %d params", tc.raw, problem, p.Len())
		}
		if got := string(p.Name(0)); got != tc.name {
			t.Errorf("%q: name %q; want %q", tc.raw, got, tc.name)
		}
		if got := string(p.Value(0)); got != tc.value {
			t.Errorf("%q: value %q; want %q", tc.raw, got, tc.value)
		}
		if got := string(p.AppendCanonical(nil, 0)); got != tc.canonical {
			t.Errorf("%q: canonical %q; want %q", tc.raw, got, tc.canonical)
		}
	}
}

// A boto 2 query (sorted, canonically encoded, the Signature appended) is
// copied whole, not pair by pair: the fast path must be taken, even after
// an empty body was parsed too; anything else must not take it.
func TestCanonicalQueryCopiedWhenPossible(t *testing.T) {
	for _, tc := range []struct {
		query, body string
		skip        string
		copied      bool
	}{
		{"AWSAccessKeyId=k&Action=A&SignatureMethod=HmacSHA256&Timestamp=2026-11-26T04%3A00%3A00Z&Signature=s%2B", "", "Signature", true},
		{"Action=A&Version=1", "", "", true},
		{"", "Action=A&Version=1", "", true},
		{"Version=1&Action=A", "", "", false},    // not sorted
		{"Action=A&Version=1", "X=1", "", false}, // two inputs
		{"Action=A&Version=1&", "", "", false},   // an empty item
		{"Action=A+B&Version=1", "", "", false},  // '+' for a space
		{"Action&Version=1", "", "", false},      // no '='
		{"Action=A&Signature=x&Version=1", "", "Signature", true},
	} {
		var p Params
		if problem, _ := p.Parse([]byte(tc.query)); problem != OK {
			t.Fatal(problem)
		}
		if problem, _ := p.Parse([]byte(tc.body)); problem != OK {
			t.Fatal(problem)
		}
		p.SortByName()
		skip := -1
		if tc.skip != "" {
			skip = p.Index(tc.skip)
		}
		if copied := p.raw != nil && p.inRawOrder(skip); copied != tc.copied {
			t.Errorf("%q + %q: copied = %v; want %v", tc.query, tc.body, copied, tc.copied)
		}
	}
}

// skipUnreserved, four bytes at a time, stops where a byte-by-byte scan
// stops: at every position of a reserved byte, from every start.
func TestSkipUnreserved(t *testing.T) {
	for n := 0; n <= 11; n++ {
		for bad := 0; bad <= n; bad++ { // bad == n: none
			s := []byte("abcdefghijk"[:n])
			if bad < n {
				s[bad] = '&'
			}
			for start := 0; start <= n; start++ {
				want := start
				for want < len(s) && unreserved[s[want]] {
					want++
				}
				if got := skipUnreserved(s, start); got != want {
					t.Errorf("skipUnreserved(%q, %d) = %d; want %d", s, start, got, want)
				}
			}
		}
	}
}
