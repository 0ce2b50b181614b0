package prehmac

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"math/rand/v2"
	"testing"
)

// Prepared keys must agree with crypto/hmac for every key and message
// length around the block size.
func TestAgreesWithCryptoHMAC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m MAC
	for _, alg := range []Alg{SHA256, SHA1} {
		newHash := sha256.New
		if alg == SHA1 {
			newHash = func() hash.Hash { return sha1.New() }
		}
		for _, keyLen := range []int{0, 1, 20, 32, 63, 64, 65, 100, 200} {
			for _, msgLen := range []int{0, 1, 55, 56, 63, 64, 65, 300} {
				key, msg := make([]byte, keyLen), make([]byte, msgLen)
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				for i := range msg {
					msg[i] = byte(rng.Uint32())
				}
				k := New(alg, key)
				want := hmac.New(newHash, key)
				want.Write(msg)
				if got := m.Sum(&k, msg); !bytes.Equal(got, want.Sum(nil)) {
					t.Errorf("alg %d key %d msg %d: got %x want %x", alg, keyLen, msgLen, got, want.Sum(nil))
				}
			}
		}
	}
}

// A MAC that m returned may key the next Prepare on m (SigV4 derives its
// signing keys that way).
func TestPrepareFromOwnMAC(t *testing.T) {
	var m MAC
	k := New(SHA256, []byte("AWS4secret"))
	for _, msg := range []string{"20150830", "us-east-1", "ec2", "aws4_request"} {
		want := hmac.New(sha256.New, m.Sum(&k, []byte(msg)))
		k = m.Prepare(SHA256, m.Sum(&k, []byte(msg)))
		want.Write([]byte("x"))
		if got := m.Sum(&k, []byte("x")); !bytes.Equal(got, want.Sum(nil)) {
			t.Fatalf("after %q: got %x want %x", msg, got, want.Sum(nil))
		}
	}
}
