package keystoneclient

import (
	"encoding/json"
	"testing"
	"time"
)

// Whatever Keystone answers, parsing a token never panics and never yields
// an identity without user, project and expiry.
func FuzzTokenBody(f *testing.F) {
	f.Add([]byte(`{"token":{"expires_at":"2026-11-25T10:59:34.000000Z","user":{"id":"u","domain":{"id":"d"}},"project":{"id":"p","domain":{"id":"d"}},"roles":[{"name":"member"}]}}`))
	f.Add([]byte(`{"token":{"OS-TRUST:trust":{"id":"t"},"project":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tb tokenBody
		if json.Unmarshal(data, &tb) != nil {
			return
		}
		id, err := tb.identity("tok", time.Now())
		if err == nil && (id.UserID == "" || id.ProjectID == "" || id.ExpiresAt().IsZero()) {
			t.Fatalf("identity without user, project or expiry: %+v", id)
		}
	})
}

// Whatever the token, packing it and unpacking it gives it back exactly:
// X-Auth-Token must be what Keystone issued.
func FuzzPackToken(f *testing.F) {
	f.Add("gAAAAABpJVYx3ZLhXh4tDvgB6sFzW-aX_q1xq0n0Tkp2eTQ0a8CwX4i8Zb9Xo7g1n2m3k4j5h6g7f8e9d0c1b2a3z4y5x6w7v8u9t0s1r2q3p4o5n6m7l8k9j0i1h2g3f4e5d6c7b8a9")
	f.Add("abc")
	f.Add("ab=\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		if got := string(appendToken(nil, packToken(tok))); got != tok {
			t.Fatalf("packToken(%q) unpacks to %q", tok, got)
		}
	})
}
