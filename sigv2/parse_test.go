package sigv2

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseBase is a complete, well-formed request (the signature is not valid:
// Parse does not check it).
var parseBase = []string{
	"AWSAccessKeyId=AKIDEXAMPLE",
	"Action=DescribeRegions",
	"Signature=c2lnbmF0dXJl",
	"SignatureMethod=HmacSHA256",
	"SignatureVersion=2",
	"Timestamp=2026-11-25T10%3A39%3A21Z",
	"Version=2014-10-01",
}

// form returns parseBase without the parameters named in drop (a
// comma-separated list; "" drops nothing), followed by extra, joined with '&'.
func form(drop string, extra ...string) string {
	var pairs []string
	for _, p := range parseBase {
		if name, _, _ := strings.Cut(p, "="); !slices.Contains(strings.Split(drop, ","), name) {
			pairs = append(pairs, p)
		}
	}
	return strings.Join(append(pairs, extra...), "&")
}

// codeString names a Code in failure messages.
func codeString(c Code) string {
	switch c {
	case 0:
		return "none"
	case CodeMissingParameter:
		return "MissingParameter"
	case CodeMalformedEncoding:
		return "MalformedEncoding"
	case CodeDuplicateParameter:
		return "DuplicateParameter"
	case CodeInvalidParameterValue:
		return "InvalidParameterValue"
	case CodeParameterCombination:
		return "ParameterCombination"
	case CodeUnsupportedSignatureVersion:
		return "UnsupportedSignatureVersion"
	case CodeUnsupportedSignatureMethod:
		return "UnsupportedSignatureMethod"
	case CodeMalformedSignature:
		return "MalformedSignature"
	case CodeSignatureMismatch:
		return "SignatureMismatch"
	case CodeExpired:
		return "Expired"
	case CodeNotYetValid:
		return "NotYetValid"
	case codePanic:
		return "panic"
	}
	return fmt.Sprintf("Code(%d)", c)
}

// describe reduces an error from Parse or Verify to "Code param: message",
// or "ok"; it also checks that every error is an *Error.
func describe(t *testing.T, err error) (Code, string) {
	t.Helper()
	if err == nil {
		return 0, ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T; want *sigv2.Error", err, err)
	}
	if !strings.HasPrefix(err.Error(), "sigv2: ") {
		t.Errorf("Error() = %q; want the prefix %q", err.Error(), "sigv2: ")
	}
	return e.Code, e.Param
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		giveQuery string
		giveBody  string
		wantCode  Code
		wantParam string
		wantMsg   string // a substring of the message, if not ""
	}{
		{name: "ok query", giveQuery: form("")},
		{name: "ok body", giveBody: form("")},
		{name: "ok split between query and body", giveQuery: "Action=DescribeRegions&Version=2014-10-01", giveBody: form("Action,Version")},
		{name: "empty request", wantCode: CodeMissingParameter, wantParam: "SignatureVersion"},

		// Missing parameters.
		{name: "missing AWSAccessKeyId", giveQuery: form("AWSAccessKeyId"), wantCode: CodeMissingParameter, wantParam: "AWSAccessKeyId", wantMsg: "AWSAccessKeyId"},
		{name: "missing Signature", giveQuery: form("Signature"), wantCode: CodeMissingParameter, wantParam: "Signature", wantMsg: "Signature"},
		{name: "missing SignatureMethod", giveQuery: form("SignatureMethod"), wantCode: CodeMissingParameter, wantParam: "SignatureMethod", wantMsg: "SignatureMethod"},
		{name: "missing Action", giveQuery: form("Action"), wantCode: CodeMissingParameter, wantParam: "Action", wantMsg: "Action"},
		{name: "missing SignatureVersion", giveQuery: form("SignatureVersion"), wantCode: CodeMissingParameter, wantParam: "SignatureVersion", wantMsg: "Signature Version 4"},
		{name: "missing Timestamp and Expires", giveQuery: form("Timestamp"), wantCode: CodeMissingParameter, wantParam: "Timestamp", wantMsg: "Expires"},
		{name: "Expires instead of Timestamp", giveQuery: form("Timestamp", "Expires=2026-11-25T10%3A44%3A21Z")},
		{name: "Timestamp in the query, the rest in the body", giveQuery: "Timestamp=2026-11-25T10%3A39%3A21Z", giveBody: form("Timestamp")},

		// SignatureVersion.
		{name: "SignatureVersion 0", giveQuery: form("SignatureVersion", "SignatureVersion=0"), wantCode: CodeUnsupportedSignatureVersion, wantParam: "SignatureVersion", wantMsg: "SignatureVersion 2 (HmacSHA256) or Signature Version 4"},
		{name: "SignatureVersion 1", giveQuery: form("SignatureVersion", "SignatureVersion=1"), wantCode: CodeUnsupportedSignatureVersion, wantParam: "SignatureVersion", wantMsg: "SignatureVersion 2 (HmacSHA256) or Signature Version 4"},
		{name: "SignatureVersion 3", giveQuery: form("SignatureVersion", "SignatureVersion=3"), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion", wantMsg: "must be 2"},
		{name: "SignatureVersion empty", giveQuery: form("SignatureVersion", "SignatureVersion="), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion"},
		{name: "SignatureVersion without =", giveQuery: form("SignatureVersion", "SignatureVersion"), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion"},
		{name: "SignatureVersion 02", giveQuery: form("SignatureVersion", "SignatureVersion=02"), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion"},
		{name: "SignatureVersion 2 with a space", giveQuery: form("SignatureVersion", "SignatureVersion=2+"), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion"},
		{name: "SignatureVersion 4", giveQuery: form("SignatureVersion", "SignatureVersion=4"), wantCode: CodeInvalidParameterValue, wantParam: "SignatureVersion"},
		{name: "SignatureVersion is checked before the other parameters", giveQuery: "SignatureVersion=1", wantCode: CodeUnsupportedSignatureVersion, wantParam: "SignatureVersion"},

		// SignatureMethod.
		{name: "SignatureMethod HmacSHA1", giveQuery: form("SignatureMethod", "SignatureMethod=HmacSHA1")},
		{name: "SignatureMethod HmacMD5", giveQuery: form("SignatureMethod", "SignatureMethod=HmacMD5"), wantCode: CodeUnsupportedSignatureMethod, wantParam: "SignatureMethod", wantMsg: "HmacSHA256"},
		{name: "SignatureMethod lowercase", giveQuery: form("SignatureMethod", "SignatureMethod=hmacsha256"), wantCode: CodeUnsupportedSignatureMethod, wantParam: "SignatureMethod"},
		{name: "SignatureMethod empty", giveQuery: form("SignatureMethod", "SignatureMethod="), wantCode: CodeUnsupportedSignatureMethod, wantParam: "SignatureMethod"},

		// Timestamp and Expires.
		{name: "Timestamp and Expires", giveQuery: form("", "Expires=2026-11-25T10%3A44%3A21Z"), wantCode: CodeParameterCombination, wantParam: "Timestamp", wantMsg: "not both"},
		{name: "Timestamp not ISO 8601", giveQuery: form("Timestamp", "Timestamp=yesterday"), wantCode: CodeInvalidParameterValue, wantParam: "Timestamp"},
		{name: "Timestamp empty", giveQuery: form("Timestamp", "Timestamp="), wantCode: CodeInvalidParameterValue, wantParam: "Timestamp"},
		{name: "Expires not ISO 8601", giveQuery: form("Timestamp", "Expires=1764067161"), wantCode: CodeInvalidParameterValue, wantParam: "Expires"},

		// Duplicates, which last-wins or first-wins parsers would let through unsigned.
		{name: "duplicate in the query", giveQuery: form("", "Action=TerminateInstances"), wantCode: CodeDuplicateParameter, wantParam: "Action", wantMsg: "more than once"},
		{name: "duplicate in the body", giveBody: form("", "Action=TerminateInstances"), wantCode: CodeDuplicateParameter, wantParam: "Action"},
		{name: "duplicate across query and body", giveQuery: "Action=TerminateInstances", giveBody: form(""), wantCode: CodeDuplicateParameter, wantParam: "Action"},
		{name: "duplicate with the same value", giveQuery: form("", "Action=DescribeRegions"), wantCode: CodeDuplicateParameter, wantParam: "Action"},
		{name: "duplicate after decoding", giveQuery: form("", "%41ction=TerminateInstances"), wantCode: CodeDuplicateParameter, wantParam: "Action"},
		{name: "duplicate after decoding lowercase hex", giveQuery: form("", "Acti%6fn=TerminateInstances"), wantCode: CodeDuplicateParameter, wantParam: "Action"},
		{name: "duplicate Signature", giveQuery: form("", "Signature=b3RoZXI="), wantCode: CodeDuplicateParameter, wantParam: "Signature"},
		{name: "duplicate of a parameter the protocol does not use", giveQuery: form("", "Filter.1.Name=a", "Filter.1.Name=b"), wantCode: CodeDuplicateParameter, wantParam: "Filter.1.Name"},
		{name: "duplicate empty values", giveQuery: form("", "DryRun", "DryRun="), wantCode: CodeDuplicateParameter, wantParam: "DryRun"},
		{name: "names differing in case are distinct", giveQuery: form("", "action=TerminateInstances")},

		// Percent-encoding.
		{name: "name %", giveQuery: form("", "%=x"), wantCode: CodeMalformedEncoding, wantMsg: "percent-encoding"},
		{name: "name %4", giveQuery: form("", "%4=x"), wantCode: CodeMalformedEncoding},
		{name: "name %G1", giveQuery: form("", "%G1=x"), wantCode: CodeMalformedEncoding},
		{name: "name %zz", giveQuery: form("", "%zz=x"), wantCode: CodeMalformedEncoding},
		{name: "name ending in %", giveQuery: form("", "Filter%=x"), wantCode: CodeMalformedEncoding},
		{name: "name without = ending in %4", giveQuery: form("", "Filter%4"), wantCode: CodeMalformedEncoding},
		{name: "value %", giveQuery: form("", "Version2=%"), wantCode: CodeMalformedEncoding, wantParam: "Version2", wantMsg: "percent-encoding"},
		{name: "value %4", giveQuery: form("", "Version2=%4"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value %G1", giveQuery: form("", "Version2=%G1"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value %zz", giveQuery: form("", "Version2=%zz"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value %1G", giveQuery: form("", "Version2=%1G"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value % in the middle", giveQuery: form("", "Version2=100%+sure"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "bad value in the body", giveBody: form("", "Version2=%4"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value %FF is not UTF-8", giveQuery: form("", "Version2=%FF"), wantCode: CodeMalformedEncoding, wantParam: "Version2", wantMsg: "UTF-8"},
		{name: "name %FF is not UTF-8", giveQuery: form("", "%FF=x"), wantCode: CodeMalformedEncoding, wantMsg: "UTF-8"},
		{name: "value overlong UTF-8", giveQuery: form("", "Version2=%C0%AF"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value UTF-16 surrogate", giveQuery: form("", "Version2=%ED%A0%80"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value truncated UTF-8", giveQuery: form("", "Version2=%C3"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "raw byte 0xFF", giveQuery: form("", "Version2=\xff"), wantCode: CodeMalformedEncoding, wantParam: "Version2"},
		{name: "value %00 is valid UTF-8", giveQuery: form("", "Version2=%00")},
		{name: "empty name", giveQuery: form("", "=x"), wantCode: CodeMalformedEncoding, wantMsg: "empty name"},
		{name: "lone =", giveQuery: form("", "="), wantCode: CodeMalformedEncoding},

		// Separators.
		{name: "empty pairs are skipped", giveQuery: "&&" + strings.ReplaceAll(form(""), "&", "&&") + "&"},
		// Older Python split pairs at ';' too: the backend would read an
		// Action this proxy never saw. Clients send %3B.
		{name: "a raw ; is refused", giveQuery: strings.ReplaceAll(form(""), "&Action=", ";Action="), wantCode: CodeMalformedEncoding, wantParam: "AWSAccessKeyId"},
		{name: "a raw ; in a name is refused", giveQuery: form("", "a;Action=TerminateInstances"), wantCode: CodeMalformedEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.Parse([]byte("GET"), []byte("ec2.example.com:8773"), []byte("/services/Cloud/"), []byte(tt.giveQuery), []byte(tt.giveBody))
			code, param := describe(t, err)
			if code != tt.wantCode || param != tt.wantParam {
				t.Fatalf("Parse(%q, %q) = %v (%s, Param %q); want %s, Param %q", tt.giveQuery, tt.giveBody, err, codeString(code), param, codeString(tt.wantCode), tt.wantParam)
			}
			if err != nil && !strings.Contains(err.(*Error).Message(), tt.wantMsg) {
				t.Errorf("Parse(%q, %q) message = %q; want it to contain %q", tt.giveQuery, tt.giveBody, err.(*Error).Message(), tt.wantMsg)
			}
		})
	}
}

// The error message is shown to the client and logged: it names parameters,
// never values (a Signature or a secret-bearing value must not be echoed).
func TestParseErrorOmitsValues(t *testing.T) {
	const marker = "S3CR3TMARKER"
	tests := []struct {
		name      string
		giveQuery string
	}{
		{name: "bad Timestamp", giveQuery: form("Timestamp", "Timestamp="+marker)},
		{name: "bad Expires", giveQuery: form("Timestamp", "Expires="+marker)},
		{name: "bad SignatureVersion", giveQuery: form("SignatureVersion", "SignatureVersion="+marker)},
		{name: "bad SignatureMethod", giveQuery: form("SignatureMethod", "SignatureMethod="+marker)},
		{name: "bad encoding after the marker", giveQuery: form("", "Version2="+marker+"%4")},
		{name: "invalid UTF-8 after the marker", giveQuery: form("", "Version2="+marker+"%FF")},
		{name: "duplicate", giveQuery: form("", "Action="+marker)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.Parse([]byte("GET"), []byte("h"), []byte("/"), []byte(tt.giveQuery), nil)
			if err == nil {
				t.Fatalf("Parse(%q) = nil; want an error", tt.giveQuery)
			}
			if strings.Contains(err.Error(), marker) {
				t.Errorf("Parse(%q) = %q; the message echoes a value", tt.giveQuery, err.Error())
			}
		})
	}
}

// TestParseStringToSign checks what Parse makes of the raw bytes, through the
// string to sign (candidate 0, the Host header lowercased).
func TestParseStringToSign(t *testing.T) {
	const (
		host   = "EC2.Example.com:8773"
		prefix = "GET\nec2.example.com:8773\n/services/Cloud/\n"
		// the canonical form of parseBase
		base = "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01"
	)
	tests := []struct {
		name       string
		givePath   string
		giveQuery  string
		giveBody   string
		wantSTS    string
		wantParams map[string]string // decoded values, checked with Param
	}{
		{
			name: "base", givePath: "/services/Cloud/", giveQuery: form(""),
			wantSTS: prefix + base,
		},
		{
			name: "empty path becomes /", givePath: "", giveQuery: form(""),
			wantSTS: "GET\nec2.example.com:8773\n/\n" + base,
		},
		{
			name: "path kept as received", givePath: "/services/Cloud/%7Efoo//", giveQuery: form(""),
			wantSTS: "GET\nec2.example.com:8773\n/services/Cloud/%7Efoo//\n" + base,
		},
		{
			name: "%3B is data", givePath: "/services/Cloud/", giveQuery: form("", "Filter.1.Value.1=a%3Bb"),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&Filter.1.Value.1=a%3Bb&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01",
			wantParams: map[string]string{"Filter.1.Value.1": "a;b"},
		},
		{
			name: "+ is a space, signed as %20", givePath: "/services/Cloud/", giveQuery: form("", "KeyName=my+key+"),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&KeyName=my%20key%20&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01",
			wantParams: map[string]string{"KeyName": "my key "},
		},
		{
			name: "%2B is a plus, signed as %2B", givePath: "/services/Cloud/", giveQuery: form("", "KeyName=my%2bkey"),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&KeyName=my%2Bkey&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01",
			wantParams: map[string]string{"KeyName": "my+key"},
		},
		{
			name: "empty pairs are skipped", givePath: "/services/Cloud/", giveQuery: "&" + strings.ReplaceAll(form(""), "&", "&&") + "&", giveBody: "&&&",
			wantSTS: prefix + base,
		},
		{
			name: "pair without = is an empty value", givePath: "/services/Cloud/", giveQuery: form("", "DryRun"),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&DryRun=&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01",
			wantParams: map[string]string{"DryRun": ""},
		},
		{
			name: "only the first = splits", givePath: "/services/Cloud/", giveQuery: form("", "UserData=a=b=="),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&UserData=a%3Db%3D%3D&Version=2014-10-01",
			wantParams: map[string]string{"UserData": "a=b=="},
		},
		{
			name: "encoded names are decoded and re-encoded", givePath: "/services/Cloud/", giveQuery: form("Action", "%41ction=DescribeRegions", "tag%3aName=x%7e"),
			wantSTS:    prefix + base + "&tag%3AName=x~",
			wantParams: map[string]string{"Action": "DescribeRegions", "tag:Name": "x~"},
		},
		{
			name: "sorted by byte order of the decoded names", givePath: "/services/Cloud/", giveQuery: form("", "Filter.2.Name=b", "Filter.10.Name=c", "Filter.1.Name=a", "aLower=1", "Z=2"),
			wantSTS: prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&Filter.1.Name=a&Filter.10.Name=c&Filter.2.Name=b&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01&Z=2&aLower=1",
		},
		{
			name: "query and body form one set", givePath: "/services/Cloud/", giveQuery: "Version=2014-10-01&Action=DescribeRegions", giveBody: form("Action,Version"),
			wantSTS: prefix + base,
		},
		{
			name: "UTF-8 and control bytes", givePath: "/services/Cloud/", giveQuery: form("", "Description=caf%C3%A9%0A%00%F0%9F%98%80+%7E*"),
			wantSTS:    prefix + "AWSAccessKeyId=AKIDEXAMPLE&Action=DescribeRegions&Description=caf%C3%A9%0A%00%F0%9F%98%80%20~%2A&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01",
			wantParams: map[string]string{"Description": "café\n\x00😀 ~*"},
		},
		{
			name: "well-known values", givePath: "/services/Cloud/", giveQuery: form(""),
			wantSTS:    prefix + base,
			wantParams: map[string]string{"AWSAccessKeyId": "AKIDEXAMPLE", "Signature": "c2lnbmF0dXJl", "Timestamp": "2026-11-25T10:39:21Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if err := r.Parse([]byte("GET"), []byte(host), []byte(tt.givePath), []byte(tt.giveQuery), []byte(tt.giveBody)); err != nil {
				t.Fatalf("Parse(%q, %q) = %v; want nil", tt.giveQuery, tt.giveBody, err)
			}
			if got := string(r.AppendStringToSign(nil, 0)); got != tt.wantSTS {
				t.Errorf("AppendStringToSign(%q, %q) =\n%q\nwant\n%q", tt.giveQuery, tt.giveBody, got, tt.wantSTS)
			}
			for name, want := range tt.wantParams {
				if got, ok := r.Param(name); !ok || string(got) != want {
					t.Errorf("Param(%q) = %q, %v; want %q, true", name, got, ok, want)
				}
			}
		})
	}
}

func TestParamMissing(t *testing.T) {
	var r Request
	if got, ok := r.Param("Action"); ok || got != nil {
		t.Errorf("zero Request: Param(%q) = %q, %v; want nil, false", "Action", got, ok)
	}
	if err := r.Parse([]byte("GET"), []byte("h"), []byte("/"), []byte(form("")), nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Nope", "action", "Action ", "%41ction", ""} {
		if got, ok := r.Param(name); ok {
			t.Errorf("Param(%q) = %q, true; want not found", name, got)
		}
	}
	if got, want := r.SignatureMethod(), HmacSHA256; got != want {
		t.Errorf("SignatureMethod() = %v; want %v", got, want)
	}
}

func TestParseMaxParams(t *testing.T) {
	fill := func(n int) []string {
		var extra []string
		for i := range n {
			extra = append(extra, fmt.Sprintf("Filter.%d.Name=x", i))
		}
		return extra
	}
	atLimit := form("", fill(MaxParams-len(parseBase))...)
	overLimit := form("", fill(MaxParams-len(parseBase)+1)...)
	// The limit holds for query and body together.
	splitQuery, splitBody, _ := strings.Cut(overLimit, "&Filter.500.Name=x&")
	splitBody = "Filter.500.Name=x&" + splitBody
	tests := []struct {
		name      string
		giveQuery string
		giveBody  string
		wantCode  Code
	}{
		{name: "MaxParams", giveQuery: atLimit},
		{name: "MaxParams+1 in the query", giveQuery: overLimit, wantCode: CodeMalformedEncoding},
		{name: "MaxParams+1 in the body", giveBody: overLimit, wantCode: CodeMalformedEncoding},
		{name: "MaxParams+1 across query and body", giveQuery: splitQuery, giveBody: splitBody, wantCode: CodeMalformedEncoding},
		{name: "empty pairs do not count", giveQuery: strings.ReplaceAll(atLimit, "&", "&&&")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.Parse([]byte("POST"), []byte("h"), []byte("/"), []byte(tt.giveQuery), []byte(tt.giveBody))
			if code, _ := describe(t, err); code != tt.wantCode {
				t.Fatalf("Parse(%d pairs in query, %d in body) = %v; want %s", strings.Count(tt.giveQuery, "="), strings.Count(tt.giveBody, "="), err, codeString(tt.wantCode))
			}
			if err != nil && !strings.Contains(err.(*Error).Message(), "more than 4096 parameters") {
				t.Errorf("message = %q; want it to name the limit", err.(*Error).Message())
			}
		})
	}
}

// A Request taken from a pool is reused without an explicit Reset: nothing of
// the previous request may survive a Parse, whether it succeeds or fails.
func TestParseReuseDoesNotLeak(t *testing.T) {
	full := form("", "Filter.1.Name=leak")
	tests := []struct {
		name      string
		giveQuery string
		giveBody  string
		wantCode  Code
	}{
		{name: "no AWSAccessKeyId and no Action", giveQuery: "SignatureVersion=2&Signature=c2ln&SignatureMethod=HmacSHA256&Timestamp=2026-11-25T10%3A39%3A21Z", wantCode: CodeMissingParameter},
		{name: "empty request", wantCode: CodeMissingParameter},
		{name: "bad encoding in the body", giveQuery: "Version=1", giveBody: "Version2=%4", wantCode: CodeMalformedEncoding},
		{name: "legacy SignatureVersion", giveQuery: "SignatureVersion=1", wantCode: CodeUnsupportedSignatureVersion},
		{name: "duplicate", giveQuery: "X=1&X=2", wantCode: CodeDuplicateParameter},
	}
	var r Request
	key := NewKey([]byte("secret"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Parse([]byte("GET"), []byte("h"), []byte("/"), []byte(full), nil); err != nil {
				t.Fatalf("Parse(full) = %v", err)
			}
			err := r.Parse([]byte("GET"), []byte("h"), []byte("/"), []byte(tt.giveQuery), []byte(tt.giveBody))
			if code, _ := describe(t, err); code != tt.wantCode {
				t.Fatalf("Parse(%q, %q) after a full request = %v; want %s", tt.giveQuery, tt.giveBody, err, codeString(tt.wantCode))
			}
			if got := r.AccessKeyID(); len(got) != 0 {
				t.Errorf("AccessKeyID() = %q after a failed Parse of a request without it; want empty", got)
			}
			if got := r.Action(); len(got) != 0 {
				t.Errorf("Action() = %q after a failed Parse of a request without it; want empty", got)
			}
			for _, name := range []string{"Filter.1.Name", "AWSAccessKeyId", "Action"} {
				if got, ok := r.Param(name); ok {
					t.Errorf("Param(%q) = %q, true; leaked from the previous request", name, got)
				}
			}
			if sts := string(r.AppendStringToSign(nil, 0)); strings.Contains(sts, "leak") || strings.Contains(sts, "AKIDEXAMPLE") {
				t.Errorf("AppendStringToSign = %q; leaked from the previous request", sts)
			}
			// Verify after a failed Parse must not succeed on stale state.
			if err := r.Verify(key, parseBaseTime, Limits{}); err == nil {
				t.Errorf("Verify after a failed Parse = nil; want an error")
			}
		})
	}
}

// parseBaseTime is the Timestamp of parseBase.
var parseBaseTime = mustTime("2026-11-25T10:39:21Z")

func mustTime(s string) time.Time {
	t, ok := ParseTimestamp([]byte(s))
	if !ok {
		panic("bad time " + s)
	}
	return t
}

// BUG (found by FuzzParse, testdata/fuzz/FuzzParse/ec1a69b544c95c4d): Parse
// only checks that AWSAccessKeyId and Action are present, so an empty value
// passes and reaches the key lookup and the backend. Either code is a fine
// fix; the Param must name the parameter.
func TestParseEmptyRequiredValues(t *testing.T) {
	tests := []struct {
		name      string
		giveQuery string
		wantParam string
	}{
		{name: "AWSAccessKeyId=", giveQuery: form("AWSAccessKeyId", "AWSAccessKeyId="), wantParam: "AWSAccessKeyId"},
		{name: "AWSAccessKeyId without =", giveQuery: form("AWSAccessKeyId", "AWSAccessKeyId"), wantParam: "AWSAccessKeyId"},
		{name: "Action=", giveQuery: form("Action", "Action="), wantParam: "Action"},
		{name: "Action without =", giveQuery: form("Action", "Action"), wantParam: "Action"},
		{name: "Signature=", giveQuery: form("Signature", "Signature="), wantParam: "Signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := r.Parse([]byte("GET"), []byte("h"), []byte("/"), []byte(tt.giveQuery), nil)
			code, param := describe(t, err)
			if code != CodeMissingParameter && code != CodeInvalidParameterValue || param != tt.wantParam {
				t.Errorf("Parse(%q) = %v (%s, Param %q); want MissingParameter or InvalidParameterValue, Param %q", tt.giveQuery, err, codeString(code), param, tt.wantParam)
			}
		})
	}
}
