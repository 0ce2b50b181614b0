package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"os"
	"testing"
)

func benchRequest(b *testing.B, name string) (func() error, []byte) {
	parse, verify, sts := benchSteps(b, name)
	return func() error {
		if err := parse(); err != nil {
			return err
		}
		return verify()
	}, sts
}

// benchSteps returns the test-suite request name's Parse and Verify as two
// steps on one Request, and its string to sign.
func benchSteps(b *testing.B, name string) (parse, verify func() error, sts []byte) {
	sreq, err := os.ReadFile("testdata/aws-testsuite/" + name + "/" + name + ".sreq")
	if err != nil {
		b.Fatal(err)
	}
	sts, _ = os.ReadFile("testdata/aws-testsuite/" + name + "/" + name + ".sts")
	w := parseWire(&testing.T{}, sreq)
	now, _ := parseAmzDate([]byte(suiteDate))
	secret := NewSecret([]byte(suiteSecret))
	hdrs := newStaticHeaders(w.headers)
	method, path, query := []byte(w.method), []byte(w.path), []byte(w.query)
	var r Request
	parse = func() error { return r.Parse(method, path, query, w.body, true, hdrs) }
	verify = func() error { return r.Verify(secret, now, Limits{}) }
	return parse, verify, sts
}

// BenchmarkVerifyPostForm is Parse+Verify of a form POST with a warm
// signing key: body hash, canonical request hash, one HMAC.
func BenchmarkVerifyPostForm(b *testing.B) {
	verify, _ := benchRequest(b, "post-x-www-form-urlencoded-parameters")
	b.ReportAllocs()
	for b.Loop() {
		if err := verify(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyOnlyPostForm is Verify alone on the parsed request of
// BenchmarkVerifyPostForm: what the signature check itself costs.
func BenchmarkVerifyOnlyPostForm(b *testing.B) {
	parse, verify, _ := benchSteps(b, "post-x-www-form-urlencoded-parameters")
	if err := parse(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := verify(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawHMACSHA256 is the baseline: crypto/hmac, pre-keyed and Reset,
// over the same string to sign.
func BenchmarkRawHMACSHA256(b *testing.B) {
	_, sts := benchRequest(b, "post-x-www-form-urlencoded-parameters")
	mac := hmac.New(sha256.New, make([]byte, 32))
	var sum [32]byte
	b.ReportAllocs()
	for b.Loop() {
		mac.Reset()
		mac.Write(sts)
		mac.Sum(sum[:0])
	}
}

// BenchmarkRawSigV4Hashes is the floor of any SigV4 check of the same
// request, whatever its parsing: SHA-256 of the body, SHA-256 of the
// canonical request, and the HMAC of the string to sign with a signing key
// already derived. RawHMACSHA256 alone, the baseline, leaves out
// the first two, which the protocol requires.
func BenchmarkRawSigV4Hashes(b *testing.B) {
	_, sts := benchRequest(b, "post-x-www-form-urlencoded-parameters")
	dir := "testdata/aws-testsuite/post-x-www-form-urlencoded-parameters/post-x-www-form-urlencoded-parameters"
	creq, err := os.ReadFile(dir + ".creq")
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("Param1=value1")
	mac := hmac.New(sha256.New, make([]byte, 32))
	h := sha256.New()
	var sum [32]byte
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Write(body)
		h.Sum(sum[:0])
		h.Reset()
		h.Write(creq)
		h.Sum(sum[:0])
		mac.Reset()
		mac.Write(sts)
		mac.Sum(sum[:0])
	}
}
