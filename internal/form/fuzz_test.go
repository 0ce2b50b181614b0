package form

import (
	"bytes"
	"testing"
)

// Parsing never panics; a successful parse re-encoded (RFC 3986) and parsed
// again gives the same parameters.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"a=b&c=d", "Action=X&X=%41+%2B;~", "=x", "a&&b=", "%G1", "a=%FF", "x=%E2%82%AC"} {
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
			enc = AppendEscaped(enc, p.Name(i))
			enc = append(enc, '=')
			enc = AppendEscaped(enc, p.Value(i))
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
