package sigv2

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"
)

// nastyTargets are request targets (path?query) that stress the decoder.
var nastyTargets = []string{
	"",
	"?",
	"/?&",
	"/?&&&",
	"/?=",
	"/?==",
	"/?%",
	"/?%%",
	"/?%4",
	"/?%G1=%zz",
	"/?a=%FF",
	"/?%FF=a",
	"/?a=%C0%AF",
	"/?a=%ED%A0%80",
	"/?a;b=c;d",
	"/?+=+",
	"/?a=1&a=1",
	"/?Action=a&%41ction=b",
	"/?Signature=&Signature",
	"/?SignatureVersion=2",
	"/?SignatureVersion=1&SignatureVersion=2",
	"/?" + form(""),
	"/?" + form("", "Expires=2026-11-25T10%3A44%3A21Z"),
	"/?" + form("Timestamp", "Expires=2026-11-25T10%3A44%3A21.999999999-23%3A59"),
	"/?" + form("Signature", "Signature="+strings.Repeat("A", 86)+"%3D%3D"),
	"/?" + form("", "Filter.1.Value.1=a+b%2Bc;d/%C3%A9~*%00%0A"),
	"/?" + form("", "DryRun"),
	"/?" + strings.Repeat("a&", MaxParams+100),
	"\x00?\x00=\x00",
}

func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Method, v.Host, v.Target, v.Body)
	}
	for _, target := range nastyTargets {
		f.Add("GET", "ec2.example.com:8773", target, "")
		f.Add("POST", "[::1]:8773", "/", strings.TrimPrefix(target, "/?"))
	}
	f.Add("", "", "", "")
	f.Add("POST", ":", "/a?b", "c")
	f.Add("POST", "[", "/", form(""))
	f.Add("post", "[::1]", "/?"+form(""), form(""))
	f.Add("GET", "A\nB", "/\n?x=1", "")

	f.Fuzz(func(t *testing.T, method, host, target, body string) {
		path, query, _ := strings.Cut(target, "?")
		parse := func(r *Request) (Code, string, string) {
			err := r.Parse([]byte(method), []byte(host), []byte(path), []byte(query), []byte(body))
			if err == nil {
				return 0, "", ""
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("Parse error %v is a %T; want *Error", err, err)
			}
			if e.Code == 0 || e.Message() == "" {
				t.Fatalf("Parse error %#v has no code or message", e)
			}
			return e.Code, e.Param, e.Message()
		}
		var r1, r2, r3 Request
		code1, param1, msg1 := parse(&r1)
		code2, param2, msg2 := parse(&r2)
		// r3 is reused: it held a complete, different request before.
		if err := r3.Parse([]byte("POST"), []byte("172.25.16.1:8773"), []byte("/services/Cloud/"), nil, []byte(publishedBody)); err != nil {
			t.Fatal(err)
		}
		code3, param3, msg3 := parse(&r3)
		if code1 != code2 || param1 != param2 || msg1 != msg2 || code1 != code3 || param1 != param3 || msg1 != msg3 {
			t.Fatalf("Parse is not deterministic: %s %q %q / %s %q %q / reused %s %q %q",
				codeString(code1), param1, msg1, codeString(code2), param2, msg2, codeString(code3), param3, msg3)
		}
		if code1 != 0 {
			return
		}
		if len(r1.AccessKeyID()) == 0 || len(r1.Action()) == 0 {
			t.Fatalf("Parse succeeded with AccessKeyID %q, Action %q", r1.AccessKeyID(), r1.Action())
		}
		if m := r1.SignatureMethod(); m != HmacSHA256 && m != HmacSHA1 {
			t.Fatalf("Parse succeeded with SignatureMethod %v", m)
		}
		for i := range 2 {
			sts := r1.AppendStringToSign(nil, i)
			if again := r1.AppendStringToSign([]byte("x"), i); !bytes.Equal(again[1:], sts) {
				t.Fatalf("AppendStringToSign(%d) is not deterministic:\n%q\n%q", i, sts, again[1:])
			}
			if other := r2.AppendStringToSign(nil, i); !bytes.Equal(other, sts) {
				t.Fatalf("AppendStringToSign(%d) differs between two Requests:\n%q\n%q", i, sts, other)
			}
			if reused := r3.AppendStringToSign(nil, i); !bytes.Equal(reused, sts) {
				t.Fatalf("AppendStringToSign(%d) differs on a reused Request:\n%q\n%q", i, sts, reused)
			}
		}
		// The canonical query follows "method\nhost\npath\n" (the host and
		// path may themselves hold newlines, so count bytes, not lines).
		sts := r1.AppendStringToSign(nil, 0)
		p := path
		if p == "" {
			p = "/"
		}
		prefix := method + "\n" + asciiLower(host) + "\n" + p + "\n"
		if !strings.HasPrefix(string(sts), prefix) {
			t.Fatalf("AppendStringToSign = %q; want the prefix %q", sts, prefix)
		}
		canonical := string(sts[len(prefix):])
		for i := range len(canonical) {
			if c := canonical[i]; !isUnreserved(c) && c != '%' && c != '=' && c != '&' {
				t.Fatalf("canonical query %q holds %q at %d", canonical, c, i)
			}
		}
		// Each canonical pair decodes to a parameter Param agrees with, and
		// Signature is left out.
		for pair := range strings.SplitSeq(canonical, "&") {
			name, value, ok := strings.Cut(pair, "=")
			if !ok {
				t.Fatalf("canonical pair %q has no '='", pair)
			}
			n, err1 := url.PathUnescape(name)
			v, err2 := url.PathUnescape(value)
			if err1 != nil || err2 != nil {
				t.Fatalf("canonical pair %q does not decode: %v %v", pair, err1, err2)
			}
			if n == "Signature" {
				t.Fatalf("canonical query %q includes the Signature", canonical)
			}
			if got, ok := r1.Param(n); !ok || string(got) != v {
				t.Fatalf("canonical pair %q, but Param(%q) = %q, %v", pair, n, got, ok)
			}
		}
		if _, ok := r1.Param("Signature"); !ok {
			t.Fatalf("Parse succeeded without a Signature")
		}
	})
}

func FuzzVerify(f *testing.F) {
	for _, v := range loadVectors(f) {
		path, query, _ := strings.Cut(v.Target, "?")
		body := ""
		if v.Method == "POST" {
			body = v.Body
		}
		f.Add(v.Secret, v.Method, v.Host, path, query, body)
	}
	at := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	f.Add("k", "GET", "[::1]:8773", "/", signForm("k", HmacSHA1, "GET", "[::1]", "/", testParams(HmacSHA1, "Expires", at)), "")
	f.Add("", "POST", "H:1", "", "", signForm("", HmacSHA256, "POST", "h:1", "/", testParams(HmacSHA256, "Timestamp", at)))
	f.Add("k", "GET", "h", "/", form("Signature", "Signature="+strings.Repeat("A", 86)+"%3D%3D"), "")
	f.Add("k", "GET", "h", "/", form("Signature", "Signature="+strings.Repeat("A", 84)+"%3D%3D"), "")
	f.Add("k", "POST", "h", "/", "", form("Signature", "Signature="+strings.Repeat("A", 86)+"=="))

	f.Fuzz(func(t *testing.T, secret, method, host, path, query, body string) {
		var r Request
		if r.Parse([]byte(method), []byte(host), []byte(path), []byte(query), []byte(body)) != nil {
			return
		}
		key := NewKey([]byte(secret))
		now := requestTime(t, &r)
		if code, _ := describe(t, verify(t, &r, key, now, Limits{})); code == codePanic {
			t.FailNow()
		}

		// Re-sign what the verifier computes and put the result in place of
		// the Signature: the request must then verify at its own time.
		sts := r.AppendStringToSign(nil, 0)
		sig := key.Sign(r.SignatureMethod(), sts)
		query2, body2 := replaceSignature(query, sig), replaceSignature(body, sig)
		var r2 Request
		if err := r2.Parse([]byte(method), []byte(host), []byte(path), []byte(query2), []byte(body2)); err != nil {
			t.Fatalf("Parse of the re-signed request (query %q, body %q) = %v", query2, body2, err)
		}
		if got := r2.AppendStringToSign(nil, 0); !bytes.Equal(got, sts) {
			t.Fatalf("re-signed request: AppendStringToSign =\n%q\nwant\n%q", got, sts)
		}
		if err := verify(t, &r2, key, now, Limits{}); err != nil {
			t.Fatalf("re-signed request (query %q, body %q, string to sign %q): Verify = %v; want nil", query2, body2, sts, err)
		}
	})
}

// FuzzVerifySignature aims at decodeSignature: the published request with
// any Signature value. Verify may refuse it but must not panic, and only the
// published signature (in whatever base64 spelling) may verify.
func FuzzVerifySignature(f *testing.F) {
	for _, s := range []string{
		publishedSig, "", "=", "====", "doK1P ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg=",
		"doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMh=", "doK1P+ImDAr9YXpW\nbH6pFHNJtBbNrWMB9lrKqawIkMg=",
		strings.Repeat("A", 84) + "==", strings.Repeat("A", 86) + "==", strings.Repeat("A", 92),
	} {
		f.Add(s)
	}
	unsigned, _, _ := strings.Cut(publishedBody, "&Signature=")
	key := NewKey([]byte(publishedSecret))
	f.Fuzz(func(t *testing.T, sig string) {
		body := unsigned + "&Signature=" + url.QueryEscape(sig)
		var r Request
		if r.Parse([]byte("POST"), []byte("172.25.16.1:8773"), []byte("/services/Cloud/"), nil, []byte(body)) != nil {
			return // not UTF-8
		}
		err := verify(t, &r, key, publishedTime, Limits{})
		code, _ := describe(t, err)
		switch code {
		case codePanic:
			t.FailNow()
		case 0:
			if got, _ := base64.StdEncoding.DecodeString(strings.ReplaceAll(sig, " ", "+")); string(got) != string(publishedSigBytes) {
				t.Fatalf("Verify accepted Signature %q", sig)
			}
		case CodeMalformedSignature, CodeSignatureMismatch:
		default:
			t.Fatalf("Verify(Signature=%q) = %v; want MalformedSignature or SignatureMismatch", sig, err)
		}
	})
}

var publishedSigBytes, _ = base64.StdEncoding.DecodeString(publishedSig)

// requestTime is a time at which r is fresh: its Timestamp, or just before
// its Expires.
func requestTime(t *testing.T, r *Request) time.Time {
	if v, ok := r.Param("Timestamp"); ok {
		when, ok := ParseTimestamp(v)
		if !ok {
			t.Fatalf("Parse accepted Timestamp %q that ParseTimestamp refuses", v)
		}
		return when
	}
	v, _ := r.Param("Expires")
	when, ok := ParseTimestamp(v)
	if !ok {
		t.Fatalf("Parse accepted Expires %q that ParseTimestamp refuses", v)
	}
	return when.Add(-time.Nanosecond)
}

// replaceSignature replaces the value of the Signature pair in the raw form,
// if it holds one, with sig.
func replaceSignature(raw, sig string) string {
	pairs := strings.Split(raw, "&")
	for i, p := range pairs {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil && n == "Signature" {
			pairs[i] = "Signature=" + url.QueryEscape(sig)
		}
	}
	return strings.Join(pairs, "&")
}

func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{
		"2026-11-25T10:39:21Z", "2026-11-25t10:39:21z", "2026-11-25T10:39:21",
		"2026-11-25T10:39:21.1Z", "2026-11-25T10:39:21.123456789Z", "2026-11-25T10:39:21.1234567890Z",
		"2026-11-25T10:39:21+02:00", "2026-11-25T10:39:21-0530", "2026-11-25T10:39:21+2:00",
		"2026-02-30T10:39:21Z", "2026-13-25T10:39:21Z", "2026-11-25T24:00:00Z", "2026-11-25T10:39:60Z",
		"2026-11-25T10:39:21.Z", "2026-11-25T10:39:21Zjunk", "", "yesterday", "2026-11-25",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
	} {
		f.Add(s)
	}
	for _, v := range loadVectors(f) {
		f.Add(v.Timestamp)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseTimestamp([]byte(s))
		if !ok {
			if !got.IsZero() {
				t.Fatalf("ParseTimestamp(%q) = %v, false; want the zero time with false", s, got)
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("ParseTimestamp(%q) = %v in %v; want UTC", s, got, got.Location())
		}
		if want, err := time.Parse(time.RFC3339Nano, asRFC3339(s)); err != nil || !want.Equal(got) {
			t.Fatalf("ParseTimestamp(%q) = %v; time.Parse gives %v, %v", s, got, want, err)
		}
		// An offset can move a year-0000 or year-9999 time out of the four
		// digits that RFC 3339 (and ParseTimestamp) allow.
		if got.Year() < 0 || got.Year() > 9999 {
			return
		}
		formatted := got.Format(time.RFC3339Nano)
		again, ok := ParseTimestamp([]byte(formatted))
		if !ok || !again.Equal(got) {
			t.Fatalf("ParseTimestamp(%q) = %v; its RFC 3339 form %q parses to %v, %v", s, got, formatted, again, ok)
		}
	})
}

// asRFC3339 rewrites a timestamp ParseTimestamp accepts into the RFC 3339
// form time.Parse reads: upper-case T and Z, Z when there is no zone, and a
// colon in a +hhmm offset.
func asRFC3339(s string) string {
	b := []byte(s)
	b[10] = 'T'
	switch rest := b[19:]; {
	case len(rest) > 0 && (rest[len(rest)-1] == 'z' || rest[len(rest)-1] == 'Z'):
		b[len(b)-1] = 'Z'
	case len(rest) >= 5 && (rest[len(rest)-5] == '+' || rest[len(rest)-5] == '-'):
		n := len(b)
		b = append(b[:n-2:n-2], ':', b[n-2], b[n-1])
	case len(rest) >= 6 && (rest[len(rest)-6] == '+' || rest[len(rest)-6] == '-'):
	default:
		b = append(b, 'Z')
	}
	return string(b)
}

// asciiLower lowercases A-Z only, as the Host comparison does (strings.ToLower
// would also fold non-ASCII letters and replace invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// FuzzDecodeMAC256 holds decodeMAC256 to encoding/base64: whatever it
// accepts, the standard decoder decodes to the same 32 bytes.
func FuzzDecodeMAC256(f *testing.F) {
	for _, s := range []string{
		publishedSig, "doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMh=", "doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIk==",
		"doK1P-ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg=", "doK1P ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg=",
		strings.Repeat("/", 43) + "=", strings.Repeat("A", 44),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sig string) {
		var got [64]byte
		if !decodeMAC256(&got, []byte(sig)) {
			return
		}
		want, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || string(want) != string(got[:32]) {
			t.Fatalf("decodeMAC256(%q) = %x; encoding/base64: %x, %v", sig, got[:32], want, err)
		}
	})
}
