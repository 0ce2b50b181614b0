package sigv2

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// benchParseVerify measures Parse+Verify of one request on a reused Request.
func benchParseVerify(b *testing.B, method, host, path, query, body string, key *Key, now time.Time, wantCode Code) {
	m, h, p, q, bd := []byte(method), []byte(host), []byte(path), []byte(query), []byte(body)
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(query) + len(body)))
	for b.Loop() {
		err := r.Parse(m, h, p, q, bd)
		if err == nil {
			err = r.Verify(key, now, Limits{})
		}
		if wantCode == 0 && err != nil || wantCode != 0 && !hasCode(err, wantCode) {
			b.Fatalf("Parse+Verify = %v; want %s", err, codeString(wantCode))
		}
	}
}

func BenchmarkVerifyPublished(b *testing.B) {
	benchParseVerify(b, "POST", "172.25.16.1:8773", "/services/Cloud/", "", publishedBody, NewKey([]byte(publishedSecret)), publishedTime, 0)
}

func BenchmarkVerifyBoto2GetFilters(b *testing.B) {
	for _, v := range loadVectors(b) {
		if v.Name != "boto2-get-sha256-filters" {
			continue
		}
		path, query, _ := strings.Cut(v.Target, "?")
		now, _ := ParseTimestamp([]byte(v.Timestamp))
		benchParseVerify(b, v.Method, v.Host, path, query, "", NewKey([]byte(v.Secret)), now, 0)
		return
	}
	b.Fatal("no vector boto2-get-sha256-filters")
}

// BenchmarkVerifyMismatch is the invalid-signature flood: a well-formed
// request signed with another secret.
func BenchmarkVerifyMismatch(b *testing.B) {
	benchParseVerify(b, "POST", "172.25.16.1:8773", "/services/Cloud/", "", publishedBody, NewKey([]byte("wrong")), publishedTime, CodeSignatureMismatch)
}

// BenchmarkRawHMACSHA256PreKeyed is the floor: crypto/hmac over the published
// string to sign, keyed once outside the loop.
func BenchmarkRawHMACSHA256PreKeyed(b *testing.B) {
	h := hmac.New(sha256.New, []byte(publishedSecret))
	sts := []byte(publishedSTS)
	var sum [sha256.Size]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(publishedBody)))
	for b.Loop() {
		h.Reset()
		h.Write(sts)
		h.Sum(sum[:0])
	}
}

// BenchmarkRawHMACSHA256Plus adds what any verifier must also do: decode the
// client's base64 signature and compare in constant time.
func BenchmarkRawHMACSHA256Plus(b *testing.B) {
	h := hmac.New(sha256.New, []byte(publishedSecret))
	sts, clientSig := []byte(publishedSTS), []byte(publishedSig)
	var sum [sha256.Size]byte
	var want [64]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(publishedBody)))
	for b.Loop() {
		n, err := base64.StdEncoding.Decode(want[:], clientSig)
		if err != nil {
			b.Fatal(err)
		}
		h.Reset()
		h.Write(sts)
		if subtle.ConstantTimeCompare(h.Sum(sum[:0]), want[:n]) != 1 {
			b.Fatal("signature does not match")
		}
	}
}
