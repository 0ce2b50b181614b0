package sigv2

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// A Key holds only the secret until a verification needs an HMAC, and then
// only the HMACs used; signing prepares nothing.
func TestKeyPreparesOnFirstUse(t *testing.T) {
	secret := []byte("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	given := append([]byte(nil), secret...)
	k := NewKey(given)
	given[0] = 'x' // NewKey copied it
	msg := []byte("GET\nec2.amazonaws.com\n/\nAction=DescribeRegions")
	for _, tt := range []struct {
		m    SignatureMethod
		hash func() hash.Hash
	}{{HmacSHA256, sha256New}, {HmacSHA1, sha1New}} {
		mac := hmac.New(tt.hash, secret)
		mac.Write(msg)
		if got, want := k.Sign(tt.m, msg), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("Sign(%v) = %s, want %s", tt.m, got, want)
		}
	}
	if k.macs.Load() != nil {
		t.Fatal("Sign prepared an HMAC")
	}
	p := k.forMethod(HmacSHA256)
	if k.macs.Load() == nil || k.macs.Load().sha1.Load() != nil {
		t.Fatal("HmacSHA256 was not prepared alone")
	}
	if k.forMethod(HmacSHA256) != p {
		t.Error("HmacSHA256 prepared twice")
	}
	s := k.forMethod(HmacSHA1)
	if s == nil || k.forMethod(HmacSHA1) != s {
		t.Error("HmacSHA1 not kept once prepared")
	}
	for _, m := range []SignatureMethod{HmacSHA256, HmacSHA1} {
		mac := hmac.New(map[SignatureMethod]func() hash.Hash{HmacSHA256: sha256New, HmacSHA1: sha1New}[m], secret)
		mac.Write(msg)
		if got, want := k.Sign(m, msg), base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("prepared Sign(%v) = %s, want %s", m, got, want)
		}
	}
}

func sha256New() hash.Hash { return sha256.New() }
func sha1New() hash.Hash   { return sha1.New() }

// Concurrent first uses agree on one prepared HMAC (run with -race).
func TestKeyConcurrentFirstUse(t *testing.T) {
	k := NewKey([]byte("secret"))
	const n = 8
	got := make([][2]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = [2]any{k.forMethod(HmacSHA256), k.forMethod(HmacSHA1)}
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got %v, goroutine 0 %v", i, got[i], got[0])
		}
	}
}

// Memory per cached credential: the Key itself is a slice and a pointer.
func TestKeySize(t *testing.T) {
	if n := unsafe.Sizeof(Key{}); n != 32 {
		t.Errorf("Key is %d bytes, want 32", n)
	}
}

// BenchmarkVerifyOnly is Verify alone, the request parsed once: what the
// key costs, apart from parsing. HmacSHA1 is prepared lazily, on top of
// HmacSHA256.
func BenchmarkVerifyOnly(b *testing.B) {
	for _, name := range []string{"boto2-get-sha256-filters", "boto2-get-sha1-filters"} {
		b.Run(name, func(b *testing.B) {
			for _, v := range loadVectors(b) {
				if v.Name != name {
					continue
				}
				path, query, _ := strings.Cut(v.Target, "?")
				now, _ := ParseTimestamp([]byte(v.Timestamp))
				key := NewKey([]byte(v.Secret))
				var r Request
				if err := r.Parse([]byte(v.Method), []byte(v.Host), []byte(path), []byte(query), nil); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := r.Verify(key, now.Add(time.Second), Limits{}); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.Fatalf("no vector %s", name)
		})
	}
}
