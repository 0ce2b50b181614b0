package credstore

import "testing"

// A credentials file parses or is refused with an error; every record it
// yields is valid.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("credentials:\n- {access_key: A, secret: s, user_id: u, project_id: p}\n"))
	f.Add([]byte("credentials: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseFile(data, "fuzz")
		if err != nil {
			return
		}
		for _, r := range s.records {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid record %+v: %v", r, err)
			}
		}
	})
}
