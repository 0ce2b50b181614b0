package sigv2

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// vector is one request captured from a real client by
// test/clients/capture_sigv2_vectors.py.
type vector struct {
	Name            string `json:"name"`
	Client          string `json:"client"`
	Method          string `json:"method"`
	Host            string `json:"host"`
	Target          string `json:"target"`
	ContentType     string `json:"content_type"`
	Body            string `json:"body"`
	AccessKey       string `json:"access_key"`
	Secret          string `json:"secret"`
	SignatureMethod string `json:"signature_method"`
	StringToSign    string `json:"string_to_sign"`
	Signature       string `json:"signature"`
	Timestamp       string `json:"timestamp"`
	Valid           bool   `json:"valid"`
	WantError       string `json:"want_error"`
	Note            string `json:"note"`
}

func loadVectors(t testing.TB) []vector {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 20 {
		t.Fatalf("only %d vectors in testdata/vectors.json", len(vs))
	}
	return vs
}

// parse feeds a vector to Parse the way the proxy does.
func (v vector) parse(r *Request) error {
	path, query, _ := strings.Cut(v.Target, "?")
	var body []byte
	if v.Method == "POST" {
		body = []byte(v.Body)
	}
	return r.Parse([]byte(v.Method), []byte(v.Host), []byte(path), []byte(query), body)
}

var wantCode = map[string]Code{
	"signature_mismatch":       CodeSignatureMismatch,
	"duplicate_param":          CodeDuplicateParameter,
	"bad_percent_encoding":     CodeMalformedEncoding,
	"legacy_signature_version": CodeUnsupportedSignatureVersion,
	"missing_param":            CodeMissingParameter,
}

func TestVectors(t *testing.T) {
	clients := map[string]int{}
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			now, ok := ParseTimestamp([]byte(v.Timestamp))
			if !ok {
				t.Fatalf("vector timestamp %q does not parse", v.Timestamp)
			}
			var r Request
			err := v.parse(&r)
			if err == nil {
				if got := string(r.AccessKeyID()); got != v.AccessKey {
					t.Errorf("AccessKeyID = %q; want %q", got, v.AccessKey)
				}
				err = r.Verify(NewKey([]byte(v.Secret)), now.Add(time.Second), Limits{})
			}
			if v.Valid {
				if err != nil {
					t.Fatalf("%s: Verify = %v; want success (%s)", v.Client, err, v.Note)
				}
				// The client's own string to sign must be one of our candidates.
				withPort, withoutPort := string(r.AppendStringToSign(nil, 0)), string(r.AppendStringToSign(nil, 1))
				if withPort != v.StringToSign && withoutPort != v.StringToSign {
					t.Errorf("no host candidate gives the client's string to sign\n got %q\nwant %q", withPort, v.StringToSign)
				}
				clients[strings.Fields(v.Client)[0]]++
				return
			}
			want, ok := wantCode[v.WantError]
			if !ok {
				t.Fatalf("unknown want_error %q", v.WantError)
			}
			if !hasCode(err, want) {
				t.Errorf("got %v; want code %d (%s): %s", err, want, v.WantError, v.Note)
			}
		})
	}
	for _, c := range []string{"boto", "botocore", "published"} {
		if clients[c] == 0 {
			t.Errorf("no valid vector from %s", c)
		}
	}
}

// The real client signatures must come out of our signer too: this checks
// Key.Sign (the exchange with Keystone uses it) against boto and botocore.
func TestVectorsSign(t *testing.T) {
	for _, v := range loadVectors(t) {
		if !v.Valid {
			continue
		}
		method := HmacSHA256
		if v.SignatureMethod == "HmacSHA1" {
			method = HmacSHA1
		}
		if got := NewKey([]byte(v.Secret)).Sign(method, []byte(v.StringToSign)); got != v.Signature {
			t.Errorf("%s: Sign = %s; want %s", v.Name, got, v.Signature)
		}
	}
}
