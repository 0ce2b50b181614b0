//go:build !race

package sigv2

import (
	"strings"
	"testing"
	"time"
)

// The verify path runs once per request and the refusal path at whatever rate
// an attacker sends: neither may allocate once a Request's buffers have grown.
func TestParseVerifyAllocs(t *testing.T) {
	vectors := map[string]vector{}
	for _, v := range loadVectors(t) {
		vectors[v.Name] = v
	}
	type input struct {
		method, host, path, query, body []byte
		key                             *Key
		now                             time.Time
	}
	fromVector := func(name, secret string) input {
		v, ok := vectors[name]
		if !ok {
			t.Fatalf("no vector %q in testdata/vectors.json", name)
		}
		now, _ := ParseTimestamp([]byte(v.Timestamp))
		path, query, _ := strings.Cut(v.Target, "?")
		var body []byte
		if v.Method == "POST" {
			body = []byte(v.Body)
		}
		if secret == "" {
			secret = v.Secret
		}
		return input{[]byte(v.Method), []byte(v.Host), []byte(path), []byte(query), body, NewKey([]byte(secret)), now.Add(time.Second)}
	}
	tests := []struct {
		name     string
		give     input
		wantCode Code
	}{
		{name: "published POST", give: fromVector("published-openstack-docs-describe-availability-zones", "")},
		{name: "boto2 GET, 12 filters, SHA-256", give: fromVector("boto2-get-sha256-filters", "")},
		{name: "boto2 GET, 12 filters, SHA-1", give: fromVector("boto2-get-sha1-filters", "")},
		{name: "botocore POST, 12 filters", give: fromVector("botocore-post-sha256-filters", "")},
		{name: "signature mismatch (wrong secret)", give: fromVector("published-openstack-docs-describe-availability-zones", "wrong"), wantCode: CodeSignatureMismatch},
		{name: "signature mismatch (tampered query)", give: fromVector("neg-boto2-get-tampered-query", ""), wantCode: CodeSignatureMismatch},
		{name: "malformed signature", give: func() input {
			in := fromVector("published-openstack-docs-describe-availability-zones", "")
			in.body = []byte(strings.Replace(string(in.body), "Signature=doK1P", "Signature=!oK1P", 1))
			return in
		}(), wantCode: CodeMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.give
			var r Request
			run := func() {
				err := r.Parse(in.method, in.host, in.path, in.query, in.body)
				if err == nil {
					err = r.Verify(in.key, in.now, Limits{})
				}
				if tt.wantCode == 0 && err != nil || tt.wantCode != 0 && !hasCode(err, tt.wantCode) {
					t.Fatalf("Parse+Verify = %v; want %s", err, codeString(tt.wantCode))
				}
			}
			run()
			if n := testing.AllocsPerRun(100, run); n != 0 {
				t.Errorf("Parse+Verify (%s) allocates %v times per request; want 0", codeString(tt.wantCode), n)
			}
		})
	}
}
