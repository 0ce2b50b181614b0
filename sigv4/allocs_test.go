//go:build !race

package sigv4

import (
	"os"
	"testing"
)

// With the signing key of the scope already derived, verifying allocates
// nothing, whether the signature matches or not.
func TestVerifyAllocs(t *testing.T) {
	for _, name := range []string{"post-x-www-form-urlencoded-parameters", "get-vanilla-query-order-encoded"} {
		t.Run(name, func(t *testing.T) {
			sreq, err := os.ReadFile("testdata/aws-testsuite/" + name + "/" + name + ".sreq")
			if err != nil {
				t.Fatal(err)
			}
			w := parseWire(t, sreq)
			now, _ := parseAmzDate([]byte(suiteDate))
			secret := NewSecret([]byte(suiteSecret))
			wrong := NewSecret([]byte("not the secret"))
			method, path, query := []byte(w.method), []byte(w.path), []byte(w.query)
			var r Request
			verify := func(s *Secret) error {
				if err := r.Parse(method, path, query, w.body, true, w.headers); err != nil {
					return err
				}
				return r.Verify(s, now, Limits{})
			}
			if err := verify(secret); err != nil {
				t.Fatal(err)
			}
			verify(wrong)
			// mapHeaders.Peek allocates ([]byte(string)); measure with a
			// header source that does not, as fasthttp's does not.
			hdrs := newStaticHeaders(w.headers)
			verify = func(s *Secret) error {
				if err := r.Parse(method, path, query, w.body, true, hdrs); err != nil {
					return err
				}
				return r.Verify(s, now, Limits{})
			}
			if n := testing.AllocsPerRun(200, func() { verify(secret) }); n != 0 {
				t.Errorf("a verified request allocates %v times", n)
			}
			if n := testing.AllocsPerRun(200, func() { verify(wrong) }); n != 0 {
				t.Errorf("a signature mismatch allocates %v times", n)
			}
		})
	}
}
