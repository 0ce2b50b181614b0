//go:build !race

package prehmac

import "testing"

// Preparing a key with a MAC's scratch allocates nothing once the MAC has
// its hashes: the sigv4 signing keys of a new scope are derived that way,
// inside a request.
func TestPrepareAllocs(t *testing.T) {
	var m MAC
	secret := []byte("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	long := make([]byte, 100)
	for _, alg := range []Alg{SHA256, SHA1} {
		m.Prepare(alg, secret)
		if n := testing.AllocsPerRun(100, func() { m.Prepare(alg, secret); m.Prepare(alg, long) }); n != 0 {
			t.Errorf("alg %d: Prepare allocates %v times", alg, n)
		}
	}
}
