package sigv4

import (
	"os"
	"path/filepath"
	"testing"
)

// Seeds: every AWS suite request, as method/path/query/body plus the
// Authorization and X-Amz-Date headers.
func addSuiteSeeds(f *testing.F) {
	dirs, _ := filepath.Glob("testdata/aws-testsuite/*")
	for _, dir := range dirs {
		name := filepath.Base(dir)
		sreq, err := os.ReadFile(filepath.Join(dir, name+".sreq"))
		if err != nil {
			continue
		}
		w := parseWire(&testing.T{}, sreq)
		f.Add(w.method, w.path, w.query, string(w.body), string(w.headers.Peek("Authorization")), string(w.headers.Peek("X-Amz-Date")), string(w.headers.Peek("Content-Type")))
	}
	f.Add("GET", "/", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fr%2Fs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00", "", "", "", "")
}

func FuzzParseVerify(f *testing.F) {
	addSuiteSeeds(f)
	secret := NewSecret([]byte(suiteSecret))
	now, _ := parseAmzDate([]byte(suiteDate))
	f.Fuzz(func(t *testing.T, method, path, query, body, auth, date, contentType string) {
		h := mapHeaders{"Host": {"example.amazonaws.com"}, "Authorization": {auth}, "X-Amz-Date": {date}, "Content-Type": {contentType}}
		var r Request
		err := r.Parse([]byte(method), []byte(path), []byte(query), []byte(body), true, h)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse returned a %T", err)
			}
			return
		}
		if len(r.AccessKeyID()) == 0 || len(r.signedHeaders) == 0 || !containsHost(r.signedHeaders) {
			t.Fatalf("Parse accepted a request without access key or signed host")
		}
		err = r.Verify(secret, now, Limits{})
		if err == nil {
			return // a fuzzed input that verifies is a valid signed request
		}
		e, ok := err.(*Error)
		if !ok || e.Message() == "" {
			t.Fatalf("Verify returned %v", err)
		}
		// Deterministic: the same input gives the same canonical request.
		first := string(r.CanonicalRequest())
		var again Request
		again.Parse([]byte(method), []byte(path), []byte(query), []byte(body), true, h)
		again.Verify(secret, now, Limits{})
		if first != "" && string(again.CanonicalRequest()) != first {
			t.Fatalf("canonical request differs between runs")
		}
	})
}
