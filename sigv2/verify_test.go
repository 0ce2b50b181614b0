package sigv2

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"
)

// testParams returns the parameters of a DescribeRegions call signed with m,
// dated by when ("Timestamp" or "Expires") at at.
func testParams(m SignatureMethod, when string, at time.Time) []Pair {
	return []Pair{
		{"AWSAccessKeyId", "AKIDEXAMPLE"},
		{"Action", "DescribeRegions"},
		{"SignatureMethod", m.String()},
		{"SignatureVersion", "2"},
		{when, at.Format(time.RFC3339Nano)},
		{"Version", "2014-10-01"},
	}
}

// encodeForm encodes params with net/url (a space becomes '+'), independently
// of AppendEscaped.
func encodeForm(params []Pair) string {
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Name))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return b.String()
}

// signForm signs params for (method, host, path) with StringToSign and
// Key.Sign, and returns them form-encoded with the Signature appended.
func signForm(secret string, m SignatureMethod, method, host, path string, params []Pair) string {
	sig := NewKey([]byte(secret)).Sign(m, StringToSign(method, host, path, params))
	return encodeForm(append(params[:len(params):len(params)], Pair{"Signature", sig}))
}

// codePanic stands for a panic in describe's results.
const codePanic Code = 255

// verify runs Verify, turning a panic into a test failure (and an *Error with
// codePanic) so that one bug does not abort the whole test binary.
func verify(t *testing.T, r *Request, key *Key, now time.Time, limits Limits) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("BUG: Verify panicked: %v", p)
			err = &Error{Code: codePanic, msg: fmt.Sprintf("panic: %v", p)}
		}
	}()
	return r.Verify(key, now, limits)
}

func TestVerifyFreshness(t *testing.T) {
	const secret = "fresh-secret"
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	tests := []struct {
		name       string
		giveWhen   string // Timestamp or Expires
		giveAt     time.Time
		giveNow    time.Time
		giveLimits Limits
		wantCode   Code
		wantParam  string
	}{
		{name: "Timestamp now", giveWhen: "Timestamp", giveAt: at, giveNow: at},
		{name: "Timestamp window old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(300 * time.Second)},
		{name: "Timestamp window+1s old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(301 * time.Second), wantCode: CodeExpired, wantParam: "Timestamp"},
		{name: "Timestamp window+1ns old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(300*time.Second + 1), wantCode: CodeExpired, wantParam: "Timestamp"},
		{name: "Timestamp window ahead", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-300 * time.Second)},
		{name: "Timestamp window+1s ahead", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-301 * time.Second), wantCode: CodeNotYetValid, wantParam: "Timestamp"},
		{name: "Timestamp window+1ns ahead", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-300*time.Second - 1), wantCode: CodeNotYetValid, wantParam: "Timestamp"},
		{name: "Timestamp with a fraction, window old", giveWhen: "Timestamp", giveAt: at.Add(500 * time.Millisecond), giveNow: at.Add(300*time.Second + 500*time.Millisecond)},
		{name: "Timestamp with a fraction, window+1ns old", giveWhen: "Timestamp", giveAt: at.Add(500 * time.Millisecond), giveNow: at.Add(300*time.Second + 500*time.Millisecond + 1), wantCode: CodeExpired, wantParam: "Timestamp"},
		{name: "Timestamp now in another zone", giveWhen: "Timestamp", giveAt: at, giveNow: at.In(time.FixedZone("CET", 3600))},
		{name: "Timestamp a day old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(24 * time.Hour), wantCode: CodeExpired, wantParam: "Timestamp"},
		{name: "custom window 60s old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(60 * time.Second), giveLimits: Limits{TimestampWindow: time.Minute}},
		{name: "custom window 61s old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(61 * time.Second), giveLimits: Limits{TimestampWindow: time.Minute}, wantCode: CodeExpired, wantParam: "Timestamp"},
		{name: "custom window 60s ahead", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-60 * time.Second), giveLimits: Limits{TimestampWindow: time.Minute}},
		{name: "custom window 61s ahead", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-61 * time.Second), giveLimits: Limits{TimestampWindow: time.Minute}, wantCode: CodeNotYetValid, wantParam: "Timestamp"},
		{name: "custom window 1h old", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(time.Hour), giveLimits: Limits{TimestampWindow: time.Hour}},
		{name: "MaxExpiresAhead does not apply to Timestamp", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(-300 * time.Second), giveLimits: Limits{MaxExpiresAhead: time.Second}},
		{name: "default window is DefaultTimestampWindow", giveWhen: "Timestamp", giveAt: at, giveNow: at.Add(DefaultTimestampWindow), giveLimits: Limits{TimestampWindow: DefaultTimestampWindow}},

		{name: "Expires in a minute", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-time.Minute)},
		{name: "Expires in 1ns", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-1)},
		{name: "Expires equal to now", giveWhen: "Expires", giveAt: at, giveNow: at, wantCode: CodeExpired, wantParam: "Expires"},
		{name: "Expires 1s ago", giveWhen: "Expires", giveAt: at, giveNow: at.Add(time.Second), wantCode: CodeExpired, wantParam: "Expires"},
		{name: "Expires a day ago", giveWhen: "Expires", giveAt: at, giveNow: at.Add(24 * time.Hour), wantCode: CodeExpired, wantParam: "Expires"},
		{name: "Expires 15m ahead", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-15 * time.Minute)},
		{name: "Expires 15m1s ahead", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-15*time.Minute - time.Second), wantCode: CodeNotYetValid, wantParam: "Expires"},
		{name: "Expires beyond the Timestamp window", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-10 * time.Minute), giveLimits: Limits{TimestampWindow: time.Minute}},
		{name: "custom MaxExpiresAhead 1h", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-time.Hour), giveLimits: Limits{MaxExpiresAhead: time.Hour}},
		{name: "custom MaxExpiresAhead 1h+1s", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-time.Hour - time.Second), giveLimits: Limits{MaxExpiresAhead: time.Hour}, wantCode: CodeNotYetValid, wantParam: "Expires"},
		{name: "custom MaxExpiresAhead 1m+1s", giveWhen: "Expires", giveAt: at, giveNow: at.Add(-time.Minute - time.Second), giveLimits: Limits{MaxExpiresAhead: time.Minute}, wantCode: CodeNotYetValid, wantParam: "Expires"},
	}
	key := NewKey([]byte(secret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := signForm(secret, HmacSHA256, "POST", "ec2.example.com", "/", testParams(HmacSHA256, tt.giveWhen, tt.giveAt))
			var r Request
			if err := r.Parse([]byte("POST"), []byte("ec2.example.com"), []byte("/"), nil, []byte(body)); err != nil {
				t.Fatalf("Parse(%q) = %v", body, err)
			}
			err := verify(t, &r, key, tt.giveNow, tt.giveLimits)
			if code, param := describe(t, err); code != tt.wantCode || param != tt.wantParam {
				t.Errorf("Verify(%s %v, now %v, %+v) = %v; want %s, Param %q", tt.giveWhen, tt.giveAt, tt.giveNow, tt.giveLimits, err, codeString(tt.wantCode), tt.wantParam)
			}
		})
	}
}

// The signature is checked before freshness: an expired request with a bad
// signature reports the mismatch.
func TestVerifySignatureBeforeFreshness(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	body := signForm("one", HmacSHA256, "POST", "h", "/", testParams(HmacSHA256, "Timestamp", at))
	var r Request
	if err := r.Parse([]byte("POST"), []byte("h"), []byte("/"), nil, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, &r, NewKey([]byte("two")), at.Add(time.Hour), Limits{}); !hasCode(err, CodeSignatureMismatch) {
		t.Errorf("Verify(wrong key, an hour late) = %v; want SignatureMismatch", err)
	}
}

func TestVerifyHostAndPath(t *testing.T) {
	const secret = "host-secret"
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	tests := []struct {
		name       string
		giveHost   string // the Host header
		givePath   string // the path received
		signHost   string // what the client signed
		signPath   string
		giveMethod SignatureMethod
		giveLimits Limits
		wantCode   Code
	}{
		{name: "with port", giveHost: "ec2.example.com:8773", signHost: "ec2.example.com:8773"},
		{name: "without port (boto 2)", giveHost: "ec2.example.com:8773", signHost: "ec2.example.com"},
		{name: "no port at all", giveHost: "ec2.example.com", signHost: "ec2.example.com"},
		{name: "uppercase Host header", giveHost: "EC2.Example.COM:8773", signHost: "ec2.example.com:8773"},
		{name: "uppercase Host header, signed without port", giveHost: "EC2.Example.COM:8773", signHost: "ec2.example.com"},
		{name: "signed with an uppercase host", giveHost: "EC2.Example.COM", signHost: "EC2.Example.COM"}, // StringToSign lowercases too
		{name: "IPv6 with port", giveHost: "[::1]:8773", signHost: "[::1]:8773"},
		{name: "IPv6 signed without port", giveHost: "[::1]:8773", signHost: "[::1]"},
		{name: "IPv6 without port", giveHost: "[::1]", signHost: "[::1]"},
		{name: "IPv6 uppercase", giveHost: "[FE80::A]:8773", signHost: "[fe80::a]:8773"},
		{name: "IPv4 with port", giveHost: "127.0.0.1:18773", signHost: "127.0.0.1:18773"},
		{name: "IPv4 signed without port", giveHost: "127.0.0.1:18773", signHost: "127.0.0.1"},
		{name: "empty path signed as /", giveHost: "h", givePath: "", signHost: "h", signPath: "/"},

		{name: "different port", giveHost: "ec2.example.com:8773", signHost: "ec2.example.com:8774", wantCode: CodeSignatureMismatch},
		{name: "signed with a port the Host header lacks", giveHost: "ec2.example.com", signHost: "ec2.example.com:8773", wantCode: CodeSignatureMismatch},
		{name: "signed with the default port", giveHost: "ec2.example.com", signHost: "ec2.example.com:80", wantCode: CodeSignatureMismatch},
		{name: "different host", giveHost: "ec2.example.com:8773", signHost: "ec2.example.org:8773", wantCode: CodeSignatureMismatch},
		{name: "IPv6 different port", giveHost: "[::1]:8773", signHost: "[::1]:8774", wantCode: CodeSignatureMismatch},
		{name: "IPv6 signed without brackets", giveHost: "[::1]:8773", signHost: "::1", wantCode: CodeSignatureMismatch},
		{name: "bare IPv6 is not split at its last colon", giveHost: "fe80::1:8773", signHost: "fe80::1", wantCode: CodeSignatureMismatch},
		{name: "bare IPv6 verbatim", giveHost: "fe80::1:8773", signHost: "fe80::1:8773"},
		{name: "different path", giveHost: "h", givePath: "/services/Cloud/", signHost: "h", signPath: "/services/Cloud", wantCode: CodeSignatureMismatch},
		{name: "path is not normalised", giveHost: "h", givePath: "/services//Cloud/", signHost: "h", signPath: "/services/Cloud/", wantCode: CodeSignatureMismatch},
		{name: "path is not decoded", giveHost: "h", givePath: "/services/%43loud/", signHost: "h", signPath: "/services/Cloud/", wantCode: CodeSignatureMismatch},
		{name: "path case matters", giveHost: "h", givePath: "/Services/Cloud/", signHost: "h", signPath: "/services/Cloud/", wantCode: CodeSignatureMismatch},

		{name: "HmacSHA1", giveHost: "h:1", signHost: "h:1", giveMethod: HmacSHA1},
		{name: "HmacSHA1 without port", giveHost: "h:1", signHost: "h", giveMethod: HmacSHA1},
		{name: "HmacSHA1 disabled", giveHost: "h:1", signHost: "h:1", giveMethod: HmacSHA1, giveLimits: Limits{DisableSHA1: true}, wantCode: CodeUnsupportedSignatureMethod},
		{name: "HmacSHA256 with SHA1 disabled", giveHost: "h:1", signHost: "h:1", giveMethod: HmacSHA256, giveLimits: Limits{DisableSHA1: true}},
	}
	key := NewKey([]byte(secret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.giveMethod
			if m == 0 {
				m = HmacSHA256
			}
			if tt.givePath == "" && tt.signPath == "" {
				tt.givePath, tt.signPath = "/services/Cloud/", "/services/Cloud/"
			}
			query := signForm(secret, m, "GET", tt.signHost, tt.signPath, testParams(m, "Timestamp", at))
			var r Request
			if err := r.Parse([]byte("GET"), []byte(tt.giveHost), []byte(tt.givePath), []byte(query), nil); err != nil {
				t.Fatalf("Parse(%q) = %v", query, err)
			}
			err := verify(t, &r, key, at, tt.giveLimits)
			if code, _ := describe(t, err); code != tt.wantCode {
				t.Errorf("Verify(Host %q, path %q, signed for %q %q) = %v; want %s", tt.giveHost, tt.givePath, tt.signHost, tt.signPath, err, codeString(tt.wantCode))
			}
		})
	}
}

// TestVerifySignatureEncoding varies how the published signature
// doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg= reaches the verifier.
func TestVerifySignatureEncoding(t *testing.T) {
	unsigned, _, ok := strings.Cut(publishedBody, "&Signature=")
	if !ok {
		t.Fatal("publishedBody has no Signature")
	}
	sigBytes, err := base64.StdEncoding.DecodeString(publishedSig)
	if err != nil {
		t.Fatal(err)
	}
	extended := func(n int) string { // the signature followed by n zero bytes
		return url.QueryEscape(base64.StdEncoding.EncodeToString(append(sigBytes[:len(sigBytes):len(sigBytes)], make([]byte, n)...)))
	}
	tests := []struct {
		name     string
		giveSig  string // the raw, still encoded, value
		wantCode Code
		alsoOK   Code // a second acceptable code, for a bug whose fix may go either way
	}{
		{name: "percent-encoded", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D"},
		{name: "lowercase hex", giveSig: "doK1P%2bImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3d"},
		{name: "unencoded + (a space after decoding)", giveSig: "doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg="},
		{name: "%20 for +", giveSig: "doK1P%20ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg="},
		{name: "every byte encoded", giveSig: encodeAll(publishedSig)},
		// Go's StdEncoding ignores the unused low bits of the last character,
		// so 'h' for 'g' decodes to the same 32 bytes and is accepted. Harmless:
		// the comparison is on decoded bytes.
		{name: "non-canonical trailing bits", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMh%3D"},
		// Go's decoder skips \r and \n anywhere in the input.
		{name: "embedded newline", giveSig: "doK1P%2BImDAr9YXpW%0AbH6pFHNJtBbNrWMB9lrKqawIkMg%3D"},
		{name: "trailing CRLF", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D%0D%0A"},

		{name: "not base64", giveSig: "not-base64!", wantCode: CodeMalformedSignature},
		{name: "URL-safe alphabet", giveSig: "doK1P-ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D", wantCode: CodeMalformedSignature},
		{name: "hex instead of base64", giveSig: fmt.Sprintf("%x", sigBytes), wantCode: CodeMalformedSignature}, // 64 characters: longer than any base64 MAC here
		{name: "missing padding", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg", wantCode: CodeMalformedSignature},
		{name: "extra padding", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D%3D", wantCode: CodeMalformedSignature},
		{name: "leading space", giveSig: "+doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D", wantCode: CodeMalformedSignature},
		{name: "one character dropped", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkM%3D", wantCode: CodeMalformedSignature},
		{name: "truncated to 30 bytes", giveSig: "doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawI", wantCode: CodeSignatureMismatch},
		{name: "truncated to 20 bytes (SHA-1 length)", giveSig: url.QueryEscape(base64.StdEncoding.EncodeToString(sigBytes[:20])), wantCode: CodeSignatureMismatch},
		{name: "one byte flipped", giveSig: "eoK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D", wantCode: CodeSignatureMismatch},
		{name: "over-long by 1 byte", giveSig: extended(1), wantCode: CodeSignatureMismatch},
		{name: "over-long to 63 bytes", giveSig: extended(31), wantCode: CodeMalformedSignature},
		{name: "over-long to 64 bytes (88 characters with ==)", giveSig: extended(32), wantCode: CodeMalformedSignature},
		// 88 characters with fewer than two '=' decode to 65 or 66 bytes: these
		// once overflowed the decode buffer and panicked.
		{name: "over-long to 65 bytes (88 characters with =)", giveSig: extended(33), wantCode: CodeMalformedSignature},
		{name: "over-long to 66 bytes (88 characters, no padding)", giveSig: extended(34), wantCode: CodeMalformedSignature},
		{name: "88 characters of A", giveSig: strings.Repeat("A", 88), wantCode: CodeMalformedSignature},
		{name: "over-long to 67 bytes (92 characters)", giveSig: extended(35), wantCode: CodeMalformedSignature},
		{name: "kilobyte", giveSig: strings.Repeat("A", 1024), wantCode: CodeMalformedSignature},
	}
	key := NewKey([]byte(publishedSecret))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := unsigned + "&Signature=" + tt.giveSig
			var r Request
			if err := r.Parse([]byte("POST"), []byte("172.25.16.1:8773"), []byte("/services/Cloud/"), nil, []byte(body)); err != nil {
				t.Fatalf("Parse(Signature=%q) = %v", tt.giveSig, err)
			}
			err := verify(t, &r, key, publishedTime, Limits{})
			if code, _ := describe(t, err); code != tt.wantCode && (tt.alsoOK == 0 || code != tt.alsoOK) {
				t.Errorf("Verify(Signature=%q) = %v; want %s", tt.giveSig, err, codeString(tt.wantCode))
			}
			// Every text that verifies is one MAC: replay protection keys
			// on it (each re-encoding of a captured signature verifies).
			if mac, ok := r.AppendMAC(nil); err == nil && (!ok || !bytes.Equal(mac, sigBytes)) {
				t.Errorf("AppendMAC(Signature=%q) = %x, %v; want %x", tt.giveSig, mac, ok, sigBytes)
			}
		})
	}
}

// encodeAll percent-encodes every byte of s.
func encodeAll(s string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// TestVerifyIndependentVectors uses strings to sign and signatures computed
// outside Go, so that a bug shared by StringToSign and the verifier (both use
// AppendEscaped) cannot hide. Each signature was produced by the python3
// command in the comment; the string to sign was written by hand and checked
// with urllib.parse.quote(v, safe="-_.~").
func TestVerifyIndependentVectors(t *testing.T) {
	tests := []struct {
		name          string
		giveSecret    string
		giveMethod    string
		giveHost      string
		givePath      string
		giveQuery     string
		giveBody      string
		giveNow       time.Time
		wantCandidate int // the host candidate the client signed
		wantMethod    SignatureMethod
		wantSTS       string
		wantSig       string
	}{
		{
			// Uppercase Host header, signed lowercase with its port; '+' for a
			// space, %2B, raw ';', '/', '~' and '*', lowercase hex, byte order
			// (Filter.1. < Filter.10 < Filter.2, Version < aLowercaseParam).
			//
			// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", b"GET\nec2.example.com:8773\n/services/Cloud/\nAWSAccessKeyId=AKIDEXAMPLE&Action=DescribeInstances&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b%2Bc%3Bd%2F%C3%A9~%2A&Filter.10.Name=tag-key&Filter.2.Name=instance-type&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01&aLowercaseParam=x", hashlib.sha256).digest()).decode())'
			name:       "GET uppercase host, SHA-256",
			giveSecret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			giveMethod: "GET", giveHost: "EC2.Example.COM:8773", givePath: "/services/Cloud/",
			giveQuery:     "Signature=LXtEF8om4mfv3KzzwQOr5OZRSFUHaEGheseORD41j00%3D&Version=2014-10-01&Action=DescribeInstances&AWSAccessKeyId=AKIDEXAMPLE&Filter.1.Name=tag:Name&Filter.1.Value.1=a+b%2Bc%3bd/%c3%a9~*&Filter.10.Name=tag-key&Filter.2.Name=instance-type&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10:39:21Z&aLowercaseParam=x",
			giveNow:       time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC),
			wantCandidate: 0,
			wantMethod:    HmacSHA256,
			wantSTS:       "GET\nec2.example.com:8773\n/services/Cloud/\nAWSAccessKeyId=AKIDEXAMPLE&Action=DescribeInstances&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b%2Bc%3Bd%2F%C3%A9~%2A&Filter.10.Name=tag-key&Filter.2.Name=instance-type&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21Z&Version=2014-10-01&aLowercaseParam=x",
			wantSig:       "LXtEF8om4mfv3KzzwQOr5OZRSFUHaEGheseORD41j00=",
		},
		{
			// IPv6 Host with a port, signed without it (boto 2); HmacSHA1;
			// Expires with an offset; a pair without '='; a newline and
			// shell characters in a value; the Signature's '+' unencoded.
			//
			// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"s3cr3t", b"POST\n[::1]\n/\nAWSAccessKeyId=AKID2&Action=RunInstances&Expires=2026-11-25T12%3A44%3A21%2B02%3A00&Flag=&ImageId=ami-00000001&SignatureMethod=HmacSHA1&SignatureVersion=2&UserData=%23%21%2Fbin%2Fsh%0Aecho%20%27hi%20there%27%20%26%26%20exit%200&Version=2014-10-01", hashlib.sha1).digest()).decode())'
			name:       "POST IPv6 without port, SHA-1, Expires",
			giveSecret: "s3cr3t",
			giveMethod: "POST", giveHost: "[::1]:8773", givePath: "/",
			giveBody:      "AWSAccessKeyId=AKID2&Action=RunInstances&ImageId=ami-00000001&UserData=%23!%2Fbin%2Fsh%0Aecho+'hi+there'+%26%26+exit+0&Expires=2026-11-25T12%3A44%3A21%2B02%3A00&SignatureMethod=HmacSHA1&SignatureVersion=2&Version=2014-10-01&Flag&Signature=EBeEDvRiP+mklqOJMFXFO3HXM1U=",
			giveNow:       time.Date(2026, 11, 25, 10, 40, 0, 0, time.UTC), // Expires is 10:44:21Z
			wantCandidate: 1,
			wantMethod:    HmacSHA1,
			wantSTS:       "POST\n[::1]\n/\nAWSAccessKeyId=AKID2&Action=RunInstances&Expires=2026-11-25T12%3A44%3A21%2B02%3A00&Flag=&ImageId=ami-00000001&SignatureMethod=HmacSHA1&SignatureVersion=2&UserData=%23%21%2Fbin%2Fsh%0Aecho%20%27hi%20there%27%20%26%26%20exit%200&Version=2014-10-01",
			wantSig:       "EBeEDvRiP+mklqOJMFXFO3HXM1U=",
		},
		{
			// A 100-byte secret (longer than the HMAC block: hashed first);
			// parameters split between query and body; UTF-8, an emoji, '%'
			// and an empty value; a Timestamp with milliseconds.
			//
			// python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(b"0123456789abcdef"*6+b"ghij", b"POST\nlocalhost:8773\n/services/Cloud/\nAWSAccessKeyId=AKID3&Action=CreateTags&ResourceId.1=i-12345678&SignatureMethod=HmacSHA256&SignatureVersion=2&Tag.1.Key=Name&Tag.1.Value=caf%C3%A9%20%F0%9F%98%80%20100%25&Tag.2.Key=empty&Tag.2.Value=&Timestamp=2026-11-25T10%3A39%3A21.123Z&Version=2014-10-01", hashlib.sha256).digest()).decode())'
			name:       "POST long secret, query and body",
			giveSecret: strings.Repeat("0123456789abcdef", 6) + "ghij",
			giveMethod: "POST", giveHost: "localhost:8773", givePath: "/services/Cloud/",
			giveQuery:     "Action=CreateTags&Version=2014-10-01",
			giveBody:      "AWSAccessKeyId=AKID3&ResourceId.1=i-12345678&Tag.1.Key=Name&Tag.1.Value=caf%C3%A9+%F0%9F%98%80+100%25&Tag.2.Key=empty&Tag.2.Value=&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2026-11-25T10%3A39%3A21.123Z&Signature=nPUxtxABcrG%2FpSeXEyYTkHKAXt1hdLRPw4vhePTX3B0%3D",
			giveNow:       time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC),
			wantCandidate: 0,
			wantMethod:    HmacSHA256,
			wantSTS:       "POST\nlocalhost:8773\n/services/Cloud/\nAWSAccessKeyId=AKID3&Action=CreateTags&ResourceId.1=i-12345678&SignatureMethod=HmacSHA256&SignatureVersion=2&Tag.1.Key=Name&Tag.1.Value=caf%C3%A9%20%F0%9F%98%80%20100%25&Tag.2.Key=empty&Tag.2.Value=&Timestamp=2026-11-25T10%3A39%3A21.123Z&Version=2014-10-01",
			wantSig:       "nPUxtxABcrG/pSeXEyYTkHKAXt1hdLRPw4vhePTX3B0=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := NewKey([]byte(tt.giveSecret))
			if got := key.Sign(tt.wantMethod, []byte(tt.wantSTS)); got != tt.wantSig {
				t.Errorf("Sign(%v, %q) = %s; want %s", tt.wantMethod, tt.wantSTS, got, tt.wantSig)
			}
			var r Request
			if err := r.Parse([]byte(tt.giveMethod), []byte(tt.giveHost), []byte(tt.givePath), []byte(tt.giveQuery), []byte(tt.giveBody)); err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if got := r.SignatureMethod(); got != tt.wantMethod {
				t.Errorf("SignatureMethod() = %v; want %v", got, tt.wantMethod)
			}
			if got := string(r.AppendStringToSign(nil, tt.wantCandidate)); got != tt.wantSTS {
				t.Errorf("AppendStringToSign(nil, %d) =\n%q\nwant\n%q", tt.wantCandidate, got, tt.wantSTS)
			}
			if err := verify(t, &r, key, tt.giveNow, Limits{}); err != nil {
				t.Errorf("Verify = %v; want nil", err)
			}
			// StringToSign, given the decoded pairs, must agree too.
			pairs := splitForm(t, tt.giveQuery+"&"+tt.giveBody)
			host := tt.giveHost
			if tt.wantCandidate == 1 {
				host = host[:strings.LastIndexByte(host, ':')]
			}
			if got := string(StringToSign(tt.giveMethod, host, tt.givePath, pairs)); got != tt.wantSTS {
				t.Errorf("StringToSign =\n%q\nwant\n%q", got, tt.wantSTS)
			}
		})
	}
}

// splitForm decodes a form with net/url, independently of parseParams
// (url.ParseQuery would drop the pairs that hold a ';').
func splitForm(t testing.TB, raw string) []Pair {
	var pairs []Pair
	for s := range strings.SplitSeq(raw, "&") {
		if s == "" {
			continue
		}
		name, value, _ := strings.Cut(s, "=")
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			t.Fatalf("splitForm(%q): %v %v", s, err1, err2)
		}
		pairs = append(pairs, Pair{n, v})
	}
	return pairs
}

// A zero Request, or one whose Parse failed, never verifies, and Verify does
// not panic on it.
func TestVerifyWithoutParse(t *testing.T) {
	key := NewKey([]byte("k"))
	var r Request
	if err := verify(t, &r, key, time.Now(), Limits{}); !hasCode(err, CodeMalformedSignature) {
		t.Errorf("zero Request: Verify = %v; want MalformedSignature", err)
	}
	// Every check that Parse makes fails before the time is stored, so a
	// caller that ignores a Parse error still gets a refusal.
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	params := append(testParams(HmacSHA256, "Timestamp", at), Pair{"Expires", "2026-11-25T10:40:00Z"})
	body := signForm("k", HmacSHA256, "POST", "h", "/", params)
	if err := r.Parse([]byte("POST"), []byte("h"), []byte("/"), nil, []byte(body)); !hasCode(err, CodeParameterCombination) {
		t.Fatalf("Parse(Timestamp and Expires) = %v; want ParameterCombination", err)
	}
	if err := verify(t, &r, key, at, Limits{}); err == nil {
		t.Errorf("Verify after a failed Parse = nil; want an error")
	}
}

// Verify is repeatable, and a success does not make a later wrong key pass.
func TestVerifyRepeat(t *testing.T) {
	var r Request
	if err := r.Parse([]byte("POST"), []byte("172.25.16.1:8773"), []byte("/services/Cloud/"), nil, []byte(publishedBody)); err != nil {
		t.Fatal(err)
	}
	good, bad := NewKey([]byte(publishedSecret)), NewKey([]byte(publishedSecret+"x"))
	for i := range 3 {
		if err := verify(t, &r, good, publishedTime, Limits{}); err != nil {
			t.Errorf("Verify #%d with the right key = %v", i, err)
		}
		if err := verify(t, &r, bad, publishedTime, Limits{}); !hasCode(err, CodeSignatureMismatch) {
			t.Errorf("Verify #%d with a wrong key = %v; want SignatureMismatch", i, err)
		}
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "", want: ""},
		{give: "ABCDEFGHIJKLMNOPQRSTUVWXYZ", want: "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
		{give: "abcdefghijklmnopqrstuvwxyz", want: "abcdefghijklmnopqrstuvwxyz"},
		{give: "0123456789", want: "0123456789"},
		{give: "-_.~", want: "-_.~"},
		{give: " ", want: "%20"},
		{give: "*", want: "%2A"},
		{give: "+", want: "%2B"},
		{give: "/", want: "%2F"},
		{give: "%", want: "%25"},
		{give: "=", want: "%3D"},
		{give: "&", want: "%26"},
		{give: ";", want: "%3B"},
		{give: ":", want: "%3A"},
		{give: "!'()", want: "%21%27%28%29"},
		{give: "é", want: "%C3%A9"},
		{give: "😀", want: "%F0%9F%98%80"},
		{give: "\x00", want: "%00"},
		{give: "\x7f", want: "%7F"},
		{give: "\xff", want: "%FF"},
		{give: "\n\r\t", want: "%0A%0D%09"},
		{give: "a b+c", want: "a%20b%2Bc"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := string(AppendEscaped(nil, []byte(tt.give))); got != tt.want {
				t.Errorf("AppendEscaped(%q) = %q; want %q", tt.give, got, tt.want)
			}
			if got := string(AppendEscaped([]byte("x="), []byte(tt.give))); got != "x="+tt.want {
				t.Errorf("AppendEscaped(%q, %q) = %q; want %q", "x=", tt.give, got, "x="+tt.want)
			}
		})
	}
	// Every byte: kept if unreserved (RFC 3986), else %XX in upper case. The
	// aws-sdk-go-v2 v2 signer's url.QueryEscape with '+' replaced by %20
	// must agree.
	for c := range 256 {
		want := fmt.Sprintf("%%%02X", c)
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			want = string(rune(c))
		}
		if got := string(AppendEscaped(nil, []byte{byte(c)})); got != want {
			t.Errorf("AppendEscaped(%#02x) = %q; want %q", c, got, want)
		}
		if q := strings.ReplaceAll(url.QueryEscape(string([]byte{byte(c)})), "+", "%20"); q != want {
			t.Errorf("AppendEscaped(%#02x) = %q; QueryEscape+%%20 gives %q", c, want, q)
		}
	}
}

// NewKey precomputes the HMAC key blocks; the result must equal crypto/hmac
// for every secret length (short, one block, longer than a block: hashed
// first) and every message length around the SHA padding boundaries.
func TestKeyMatchesCryptoHMAC(t *testing.T) {
	rng := rand.New(rand.NewChaCha8([32]byte{'s', 'i', 'g', 'v', '2'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	secretLens := []int{0, 1, 16, 20, 32, 40, 55, 56, 63, 64, 65, 100, 127, 128, 129, 200}
	messageLens := []int{0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 129, 300, 1000, 4099}
	for _, m := range []struct {
		method SignatureMethod
		hash   func() hash.Hash
	}{{HmacSHA256, sha256.New}, {HmacSHA1, sha1.New}} {
		for _, sl := range secretLens {
			secret := random(sl)
			key := NewKey(secret)
			for _, ml := range messageLens {
				msg := random(ml)
				h := hmac.New(m.hash, secret)
				h.Write(msg)
				want := base64.StdEncoding.EncodeToString(h.Sum(nil))
				if got := key.Sign(m.method, msg); got != want {
					t.Errorf("NewKey(%d-byte secret).Sign(%v, %d-byte message) = %s; crypto/hmac gives %s", sl, m.method, ml, got, want)
				}
			}
		}
	}
}

// Verify, not only Sign, agrees with crypto/hmac for secrets of every length.
func TestVerifyKeyLengths(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	for _, sl := range []int{0, 1, 63, 64, 65, 200} {
		for _, m := range []SignatureMethod{HmacSHA256, HmacSHA1} {
			secret := strings.Repeat("k", sl)
			params := testParams(m, "Timestamp", at)
			h := hmac.New(map[SignatureMethod]func() hash.Hash{HmacSHA256: sha256.New, HmacSHA1: sha1.New}[m], []byte(secret))
			h.Write(StringToSign("POST", "h", "/", params))
			body := encodeForm(append(params, Pair{"Signature", base64.StdEncoding.EncodeToString(h.Sum(nil))}))
			var r Request
			if err := r.Parse([]byte("POST"), []byte("h"), []byte("/"), nil, []byte(body)); err != nil {
				t.Fatal(err)
			}
			if err := verify(t, &r, NewKey([]byte(secret)), at, Limits{}); err != nil {
				t.Errorf("Verify(%v, %d-byte secret) = %v; want nil", m, sl, err)
			}
		}
	}
}

// NewKey keeps no reference to the caller's secret.
func TestNewKeyCopiesSecret(t *testing.T) {
	secret := []byte("921a3445e0c2485d83458251d1803219")
	key := NewKey(secret)
	for i := range secret {
		secret[i] = 0
	}
	if got := key.Sign(HmacSHA256, []byte(publishedSTS)); got != publishedSig {
		t.Errorf("Sign after the secret was overwritten = %s; want %s", got, publishedSig)
	}
}

// TestDecodeMAC256 checks the fast path against encoding/base64 on every
// character in every position of a 44-character signature.
func TestDecodeMAC256(t *testing.T) {
	base := []byte(publishedSig)
	var got [64]byte
	for i := range 44 {
		for c := range 256 {
			sig := bytes.Clone(base)
			sig[i] = byte(c)
			ok := decodeMAC256(&got, sig)
			want, err := base64.StdEncoding.DecodeString(string(sig))
			switch {
			case ok && (err != nil || !bytes.Equal(want, got[:32])):
				t.Fatalf("decodeMAC256(%q) = %x; encoding/base64: %x, %v", sig, got[:32], want, err)
			case !ok && err == nil && len(want) == 32 && !bytes.ContainsAny(sig, "\r\n"):
				t.Errorf("decodeMAC256(%q) refused what encoding/base64 decodes", sig)
			}
		}
	}
}
