package sigv4

import (
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	const cred = "Credential=AK/20150830/us-east-1/ec2/aws4_request"
	const sig = "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
	tests := []struct {
		name, query, auth, date string
		want                    Code
		text                    string
	}{
		{"no separator after algorithm", "Action=A", "AWS4-HMAC-SHA256Credential=x", suiteDate, CodeIncompleteSignature, "must start with AWS4-HMAC-SHA256"},
		{"part without =", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders, " + sig, suiteDate, CodeIncompleteSignature, "without '='"},
		{"unknown part", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, " + sig + ", Foo=1", suiteDate, CodeIncompleteSignature, "unknown part Foo"},
		{"no signature", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host", suiteDate, CodeIncompleteSignature, "lacks the Signature"},
		{"no signed headers", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", " + sig, suiteDate, CodeIncompleteSignature, "lacks SignedHeaders"},
		{"credential with 3 parts", "Action=A", "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1, SignedHeaders=host, " + sig, suiteDate, CodeIncompleteSignature, "access-key/YYYYMMDD"},
		{"credential not aws4_request", "Action=A", "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws5_request, SignedHeaders=host, " + sig, suiteDate, CodeIncompleteSignature, "aws4_request"},
		{"signature not hex", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=" + strings.Repeat("z", 64), suiteDate, CodeIncompleteSignature, "hexadecimal"},
		{"signature short", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, Signature=abcd", suiteDate, CodeIncompleteSignature, "64 hexadecimal"},
		{"host not signed", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, " + sig, suiteDate, CodeIncompleteSignature, "host header must be among the signed headers"},
		{"no date", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, " + sig, "", CodeMissingParameter, "X-Amz-Date"},
		{"bad date", "Action=A", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, " + sig, "2015-08-30T12:36:00Z", CodeIncompleteSignature, "X-Amz-Date must look like"},
		{"scope date differs", "Action=A", "AWS4-HMAC-SHA256 Credential=AK/20150831/us-east-1/ec2/aws4_request, SignedHeaders=host, " + sig, suiteDate, CodeIncompleteSignature, "credential scope date 20150831"},
		{"duplicate parameter", "Action=A&Action=B", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, " + sig, suiteDate, CodeDuplicateParameter, "Action is given more than once"},
		{"bad encoding", "Action=%G1", "AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host, " + sig, suiteDate, CodeMalformedEncoding, "percent-encoding"},
		{"presigned expires too long", "Action=A&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fr%2Fs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=" + strings.Repeat("0", 64), "", "", CodeInvalidParameterValue, "604800"},
		{"presigned expires not a number", "Action=A&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fr%2Fs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=-1&X-Amz-SignedHeaders=host&X-Amz-Signature=" + strings.Repeat("0", 64), "", "", CodeInvalidParameterValue, "seconds"},
		{"presigned wrong algorithm", "Action=A&X-Amz-Algorithm=AWS4-HMAC-SHA1", "", "", CodeIncompleteSignature, "X-Amz-Algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mapHeaders{"Host": {"h"}}
			if tt.auth != "" {
				h["Authorization"] = []string{tt.auth}
			}
			if tt.date != "" {
				h["X-Amz-Date"] = []string{tt.date}
			}
			var r Request
			err := r.Parse([]byte("GET"), []byte("/"), []byte(tt.query), nil, false, h)
			e, ok := err.(*Error)
			if !ok || e.Code != tt.want || !strings.Contains(e.Message(), tt.text) {
				t.Errorf("Parse = %v; want code %d containing %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestFreshnessAndScope(t *testing.T) {
	sreq := []byte("GET /?Action=DescribeRegions HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\n")
	w := parseWire(t, sreq)
	// Sign it with the verifier's own machinery at the suite date; the
	// signature itself is covered by the AWS suite.
	var r Request
	secret := NewSecret([]byte(suiteSecret))
	signed := func() mapHeaders {
		h := mapHeaders{"Host": w.headers["Host"], "X-Amz-Date": w.headers["X-Amz-Date"]}
		h["Authorization"] = []string{"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("0", 64)}
		r.Parse([]byte("GET"), []byte("/"), []byte(w.query), nil, false, h)
		r.Verify(secret, time.Time{}, Limits{})
		key := secret.signingKey([]byte("20150830"), []byte("us-east-1"), []byte("ec2"), &r.mac)
		var m = r.mac
		sig := m.Sum(key, r.StringToSign())
		h["Authorization"] = []string{strings.Replace(h["Authorization"][0], strings.Repeat("0", 64), hexString(sig), 1)}
		return h
	}()
	at, _ := parseAmzDate([]byte(suiteDate))
	tests := []struct {
		name   string
		now    time.Time
		limits Limits
		want   Code
	}{
		{"on time", at, Limits{}, 0},
		{"window edge past", at.Add(300 * time.Second), Limits{}, 0},
		{"too old", at.Add(301 * time.Second), Limits{}, CodeExpired},
		{"window edge future", at.Add(-300 * time.Second), Limits{}, 0},
		{"too far ahead", at.Add(-301 * time.Second), Limits{}, CodeNotYetValid},
		{"centuries ahead (Duration saturates)", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Limits{}, CodeNotYetValid},
		{"centuries old (Duration saturates)", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), Limits{}, CodeExpired},
		{"custom window", at.Add(61 * time.Second), Limits{TimestampWindow: time.Minute}, CodeExpired},
		{"region allowed", at, Limits{Regions: []string{"RegionOne", "us-east-1"}}, 0},
		{"region refused", at, Limits{Regions: []string{"RegionOne"}}, CodeScopeNotAllowed},
		{"service refused", at, Limits{Services: []string{"ec2x"}}, CodeScopeNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Parse([]byte("GET"), []byte("/"), []byte(w.query), nil, false, signed); err != nil {
				t.Fatal(err)
			}
			err := r.Verify(secret, tt.now, tt.limits)
			if tt.want == 0 && err != nil || tt.want != 0 && (err == nil || err.(*Error).Code != tt.want) {
				t.Errorf("Verify = %v; want code %d", err, tt.want)
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
