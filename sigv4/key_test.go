package sigv4

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

func referenceSigningKey(secret, date, region, service string) []byte {
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	return mac(mac(mac(mac([]byte("AWS4"+secret), date), region), service), "aws4_request")
}

// scopes lists what s keeps, newest first.
func scopes(s *Secret) []string {
	var out []string
	for d := s.keys.Load(); d != nil; d = d.next {
		out = append(out, d.scope.date+"/"+d.scope.region+"/"+d.scope.service)
	}
	return out
}

// A Secret derives a scope's signing key on first use, keeps it, and
// holds nothing else before.
func TestSigningKeyDerivedOnce(t *testing.T) {
	given := []byte("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	s := NewSecret(given)
	given[0] = 'x' // NewSecret copied it
	if s.keys.Load() != nil {
		t.Fatal("a new Secret holds signing keys")
	}
	var m prehmac.MAC
	k := s.signingKey([]byte("20150830"), []byte("us-east-1"), []byte("iam"), &m)
	want := hmac.New(sha256.New, referenceSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam"))
	want.Write([]byte("msg"))
	if got := m.Sum(k, []byte("msg")); !bytes.Equal(got, want.Sum(nil)) {
		t.Fatalf("signing key MAC %x, want %x", got, want.Sum(nil))
	}
	if again := s.signingKey([]byte("20150830"), []byte("us-east-1"), []byte("iam"), &m); again != k {
		t.Error("the scope was derived again")
	}
	date, region, service := []byte("20150830"), []byte("us-east-1"), []byte("iam")
	if n := testing.AllocsPerRun(100, func() { s.signingKey(date, region, service, &m) }); n != 0 {
		t.Errorf("a warm scope allocates %v times", n)
	}
}

// Scopes are kept for two dates at most, maxScopes in all, newest first;
// secrets share one interned scope.
func TestScopesKept(t *testing.T) {
	s := NewSecret([]byte("secret"))
	var m prehmac.MAC
	use := func(date, region string) { s.signingKey([]byte(date), []byte(region), []byte("ec2"), &m) }
	use("20261124", "a")
	use("20261124", "b")
	use("20261125", "a")
	if got, want := fmt.Sprint(scopes(s)), "[20261125/a/ec2 20261124/b/ec2 20261124/a/ec2]"; got != want {
		t.Errorf("scopes %s, want %s", got, want)
	}
	use("20261126", "a") // the day before yesterday goes
	if got, want := fmt.Sprint(scopes(s)), "[20261126/a/ec2 20261125/a/ec2]"; got != want {
		t.Errorf("scopes %s, want %s", got, want)
	}
	for i := range 10 {
		use("20261126", fmt.Sprint("r", i))
	}
	got := scopes(s)
	if len(got) != maxScopes || got[0] != "20261126/r9/ec2" || got[maxScopes-1] != "20261126/r2/ec2" {
		t.Errorf("scopes %v, want the newest %d", got, maxScopes)
	}
	// Every kept key is still right.
	for d := s.keys.Load(); d != nil; d = d.next {
		want := hmac.New(sha256.New, referenceSigningKey("secret", d.scope.date, d.scope.region, d.scope.service))
		want.Write([]byte("x"))
		if got := m.Sum(&d.key, []byte("x")); !bytes.Equal(got, want.Sum(nil)) {
			t.Errorf("%s: wrong signing key", d.scope.region)
		}
	}
	other := NewSecret([]byte("other"))
	other.signingKey([]byte("20261126"), []byte("r9"), []byte("ec2"), &m)
	if other.keys.Load().scope != s.keys.Load().scope {
		t.Error("two secrets hold a scope each")
	}
}

// Concurrent first uses of a scope agree on one key (run with -race).
func TestSigningKeyConcurrentFirstUse(t *testing.T) {
	s := NewSecret([]byte("secret"))
	const n = 8
	got := make([]*prehmac.Key, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m prehmac.MAC
			got[i] = s.signingKey([]byte("20261125"), []byte("RegionOne"), []byte("ec2"), &m)
			s.signingKey([]byte("20261125"), []byte(fmt.Sprint("r", i)), []byte("ec2"), &m)
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got another key than goroutine 0", i)
		}
	}
	if k := scopes(s); len(k) != maxScopes {
		t.Errorf("%d scopes kept, want %d: %v", len(k), maxScopes, k)
	}
}

// Memory per cached credential: a Secret is a slice and a pointer, a
// derived scope one 96-byte allocation.
func TestSecretSize(t *testing.T) {
	if n := unsafe.Sizeof(Secret{}); n != 32 {
		t.Errorf("Secret is %d bytes, want 32", n)
	}
	if n := unsafe.Sizeof(derived{}); n > 96 {
		t.Errorf("derived is %d bytes, want at most 96", n)
	}
}
