package sigv4

import (
	"bytes"
	"net/url"
	"strings"
	"testing"
	"time"
)

// vector is one request captured from a real client by
// test/clients/capture_sigv4_vectors.py (botocore with and without awscrt,
// boto 2.49, awscli), or derived from one.
type vector struct {
	Name, Client, Method, Target string
	Headers                      [][2]string
	Body                         string
	AccessKey                    string `json:"access_key"`
	Secret                       string
	CanonicalRequest             string `json:"canonical_request"`
	StringToSign                 string `json:"string_to_sign"`
	AmzDate                      string `json:"amz_date"`
	Presigned                    bool
	Valid                        bool
	WantError                    string `json:"want_error"`
	Note                         string
}

var vectorCodes = map[string]Code{
	"signature_mismatch":         CodeSignatureMismatch,
	"missing_host":               CodeIncompleteSignature,
	"scope_date_mismatch":        CodeIncompleteSignature,
	"malformed_authorization":    CodeIncompleteSignature,
	"expires_too_long":           CodeInvalidParameterValue,
	"unsigned_payload_with_body": CodeInvalidParameterValue,
}

func TestRealClientVectors(t *testing.T) {
	vs := loadVectors(t)
	clients := map[string]int{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			h := mapHeaders{}
			for _, kv := range v.Headers {
				k := strings.ToLower(kv[0])
				h[canonicalKey(k)] = append(h[canonicalKey(k)], kv[1])
			}
			path, query, _ := strings.Cut(v.Target, "?")
			isForm := bytes.HasPrefix(h.Peek("Content-Type"), []byte("application/x-www-form-urlencoded"))
			now, ok := parseAmzDate([]byte(v.AmzDate))
			if !ok {
				t.Fatalf("amz_date %q", v.AmzDate)
			}
			var r Request
			err := r.Parse([]byte(v.Method), []byte(path), []byte(query), []byte(v.Body), isForm, h)
			if err == nil {
				if string(r.AccessKeyID()) != v.AccessKey {
					t.Errorf("AccessKeyID = %q; want %q", r.AccessKeyID(), v.AccessKey)
				}
				err = r.Verify(NewSecret([]byte(v.Secret)), now.Add(time.Second), Limits{})
			}
			if v.Valid {
				if err != nil {
					t.Fatalf("%s: %v (%s)\ncanonical request:\n%s\nclient's:\n%s", v.Client, err, v.Note, r.CanonicalRequest(), v.CanonicalRequest)
				}
				if string(r.CanonicalRequest()) != v.CanonicalRequest || string(r.StringToSign()) != v.StringToSign {
					t.Errorf("canonical request or string to sign differ from the client's:\n%s\nclient's:\n%s", r.CanonicalRequest(), v.CanonicalRequest)
				}
				clients[strings.Fields(v.Client)[0]]++
				return
			}
			want, ok := vectorCodes[v.WantError]
			if !ok {
				t.Fatalf("unknown want_error %q", v.WantError)
			}
			if e, ok := err.(*Error); !ok || e.Code != want {
				t.Errorf("got %v; want code %d (%s): %s", err, want, v.WantError, v.Note)
			}
		})
	}
	for _, c := range []string{"botocore", "boto", "aws-cli/2.9.19"} {
		if clients[c] == 0 {
			t.Errorf("no valid vector from %s (have %v)", c, clients)
		}
	}
}

func canonicalKey(lower string) string {
	b := []byte(lower)
	up := true
	for i, c := range b {
		if up && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == '-'
	}
	return string(b)
}

// TestRealClientPathTampered sends each real-client request that verifies
// only with its path's AWS form to other paths: unescaped, with a letter
// changed, without its trailing '/'. None verifies. The AWS form itself,
// sent as the path, does: the path as received is always a candidate.
func TestRealClientPathTampered(t *testing.T) {
	n := 0
	for _, v := range loadVectors(t) {
		path, query, _ := strings.Cut(v.Target, "?")
		signed := strings.Split(v.CanonicalRequest, "\n")[1]
		if !v.Valid || signed == path {
			continue
		}
		n++
		h := mapHeaders{}
		for _, kv := range v.Headers {
			k := canonicalKey(strings.ToLower(kv[0]))
			h[k] = append(h[k], kv[1])
		}
		isForm := bytes.HasPrefix(h.Peek("Content-Type"), []byte("application/x-www-form-urlencoded"))
		now, _ := parseAmzDate([]byte(v.AmzDate))
		verify := func(path string) error {
			var r Request
			if err := r.Parse([]byte(v.Method), []byte(path), []byte(query), []byte(v.Body), isForm, h); err != nil {
				return err
			}
			return r.Verify(NewSecret([]byte(v.Secret)), now, Limits{})
		}
		if err := verify(signed); err != nil {
			t.Errorf("%s: the signed path %s sent as the path: %v", v.Name, signed, err)
		}
		i := strings.LastIndexFunc(path, func(c rune) bool { return 'a' <= c && c <= 'y' || 'A' <= c && c <= 'Y' })
		tampered := []string{path[:i] + string(path[i]+1) + path[i+1:], strings.TrimSuffix(path, "/")}
		if unescaped, err := url.PathUnescape(path); err == nil && unescaped != path {
			tampered = append(tampered, unescaped)
		}
		for _, p := range tampered {
			if e, ok := verify(p).(*Error); !ok || e.Code != CodeSignatureMismatch {
				t.Errorf("%s: signed for %s, sent to %q: got %v; want a signature mismatch", v.Name, path, p, e)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d vectors signed with a path's AWS form", n)
	}
}
