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

// benchVectors are typical requests from real clients: the OpenStack docs'
// example (boto 2, a few parameters), and DescribeInstances with 12
// filters, awkward values included, from boto 2 (GET) and botocore (POST).
var benchVectors = []string{
	"published-openstack-docs-describe-availability-zones",
	"boto2-get-sha256-filters",
	"botocore-post-sha256-filters",
}

// BenchmarkVectors measures, for each vector: Parse+Verify (what a request
// costs), Verify alone on the parsed request (the signature check: canonical
// string, HMAC, compare, freshness), and the floors over the vector's own
// string to sign: a pre-keyed crypto/hmac, and that plus the base64 decode
// and constant-time compare any verifier needs. bench/report divides the
// first two by raw-hmac.
func BenchmarkVectors(b *testing.B) {
	vectors := map[string]vector{}
	for _, v := range loadVectors(b) {
		vectors[v.Name] = v
	}
	for _, name := range benchVectors {
		v, ok := vectors[name]
		if !ok {
			b.Fatalf("no vector %s", name)
		}
		now, _ := ParseTimestamp([]byte(v.Timestamp))
		key := NewKey([]byte(v.Secret))
		path, query, _ := strings.Cut(v.Target, "?")
		var body string
		if v.Method == "POST" {
			body = v.Body
		}
		b.Run(name+"/parse+verify", func(b *testing.B) {
			benchParseVerify(b, v.Method, v.Host, path, query, body, key, now, 0)
		})
		b.Run(name+"/verify", func(b *testing.B) {
			var r Request
			if err := v.parse(&r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Verify(key, now, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/raw-hmac", func(b *testing.B) {
			h := hmac.New(sha256.New, []byte(v.Secret))
			sts := []byte(v.StringToSign)
			var sum [sha256.Size]byte
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				h.Write(sts)
				h.Sum(sum[:0])
			}
		})
		b.Run(name+"/raw-hmac+decode+compare", func(b *testing.B) {
			h := hmac.New(sha256.New, []byte(v.Secret))
			sts, clientSig := []byte(v.StringToSign), []byte(v.Signature)
			var sum [sha256.Size]byte
			var want [64]byte
			b.ReportAllocs()
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
		})
	}
}

// BenchmarkVerifyMismatch is the invalid-signature flood: a well-formed
// request signed with another secret.
func BenchmarkVerifyMismatch(b *testing.B) {
	benchParseVerify(b, "POST", "172.25.16.1:8773", "/services/Cloud/", "", publishedBody, NewKey([]byte("wrong")), publishedTime, CodeSignatureMismatch)
}
