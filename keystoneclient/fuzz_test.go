package keystoneclient

import (
	"encoding/json"
	"testing"
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
		id, err := tb.identity("tok")
		if err == nil && (id.UserID == "" || id.ProjectID == "" || id.ExpiresAt().IsZero()) {
			t.Fatalf("identity without user, project or expiry: %+v", id)
		}
	})
}
