package sigv4

import (
	"errors"
	"testing"
	"time"
)

// TestAppendAWSPath holds appendAWSPath to botocore 1.29.27's
// SigV4Auth._normalize_url_path: every want is what it returned for the
// path (boto 2 agrees on all but "/a/../", which it signs as "//", and
// "/a/.", which it sends as "/a/./").
func TestAppendAWSPath(t *testing.T) {
	for _, c := range []struct{ path, want string }{
		{"/", "/"},
		{"/services/Cloud/", "/services/Cloud/"},
		{"/services/Cloud", "/services/Cloud"},
		{"/a%7Eb/", "/a%257Eb/"},
		{"/a%20b/", "/a%2520b/"},
		{"/a~b/", "/a~b/"},
		{"/services//Cloud/", "/services/Cloud/"},
		{"/services/./Cloud/", "/services/Cloud/"},
		{"/services/Cloud/../Cloud/", "/services/Cloud/"},
		{"//", "/"},
		{"/./", "/"},
		{"/..", "/"},
		{"/../..", "/"},
		{"/a/..", "/"},
		{"/a/../", "/"},
		{"/a/.", "/a"},
		{"/a/./", "/a/"},
		{"//a//b//", "/a/b/"},
		{"/a/b/../../..//c", "/c"},
		{"/%2e%2e/a", "/%252e%252e/a"},
		{"/.../a/..b/", "/.../a/..b/"},
		{"/a%2Fb/", "/a%252Fb/"},
		{"/a?b", "/a%3Fb"},
		{"/\u00e9/", "/%C3%A9/"},
		{"/a+b=c;d,e!*()[]@:$&'/", "/a%2Bb%3Dc%3Bd%2Ce%21%2A%28%29%5B%5D%40%3A%24%26%27/"},
		{"a/b/", "a/b/"},
		{"a/../", ""},
		{".", ""},
		{"/\u1234", "/%E1%88%B4"},
	} {
		if got, _ := appendAWSPath(nil, nil, []byte(c.path)); string(got) != c.want {
			t.Errorf("appendAWSPath(%q) = %q; want %q", c.path, got, c.want)
		}
		if got, _ := appendAWSPath([]byte("x/y"), []byte("scratch"), []byte(c.path)); string(got) != "x/y"+c.want {
			t.Errorf("appendAWSPath(%q) after x/y = %q; want %q", c.path, got, "x/y"+c.want)
		}
	}
}

// TestVerifyAWSPath: a request verifies if signed over its path as received
// (as Keystone's ec2tokens signs it) or over the path's AWS form (as
// botocore, boto 2 and the AWS spec sign it), in header and presigned form,
// also a presigned GET signed for POST; any other path is refused.
func TestVerifyAWSPath(t *testing.T) {
	const host = "ec2.example.com:8773"
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	secret := NewSecret([]byte("secret"))
	signing := func(method, path string) Signing {
		return Signing{
			Method: method, Host: host, Path: path, AccessKey: "AK", Secret: "secret",
			Region: "RegionOne", Service: "ec2", Time: now,
		}
	}
	for _, c := range []struct {
		sent, signed string
		ok           bool
	}{
		{"/a%7Eb/", "/a%257Eb/", true},
		{"/a%20b/", "/a%2520b/", true},
		{"/services//Cloud/", "/services/Cloud/", true},
		{"/services/./Cloud/", "/services/Cloud/", true},
		{"/services/Cloud/../Cloud/", "/services/Cloud/", true},
		{"/services/Cloud/", "/services/Cloud/", true},
		{"", "/", true},
		// Signed as received.
		{"/a%7Eb/", "/a%7Eb/", true},
		{"/services/Cloud/../Cloud/", "/services/Cloud/../Cloud/", true},
		// Another spelling of the same AWS form is, as at AWS, the same
		// request. So is the AWS form itself, sent as it is: the path as
		// received is always a candidate.
		{"/services/x/../Cloud//", "/services/Cloud/", true},
		{"/a%257Eb/", "/a%257Eb/", true},
		// Tampered.
		{"/a~b/", "/a%257Eb/", false},
		{"/a%7eb/", "/a%257Eb/", false},
		{"/a%7Eb/", "/a~b/", false},
		{"/a%20b/", "/a%20b%20/", false},
		{"/services/Cloud2/", "/services/Cloud/", false},
		{"/services/./Cloud2/", "/services/Cloud/", false},
		{"/services/Cloud/../Other/", "/services/Cloud/", false},
		{"/services/Cloud/", "/a%257Eb/", false},
	} {
		check := func(t *testing.T, r *Request, err error) {
			t.Helper()
			if c.ok {
				if err != nil {
					t.Fatalf("%v\ncanonical request:\n%s", err, r.CanonicalRequest())
				}
				// Told apart for a caller routing by path: over the AWS form
				// only when the path as received did not verify.
				viaAWS := c.signed != c.sent && !(c.sent == "" && c.signed == "/")
				if r.NormalizedPathVerified() != viaAWS {
					t.Errorf("NormalizedPathVerified = %v; want %v", r.NormalizedPathVerified(), viaAWS)
				}
				if want := string(AppendNormalizedPath(nil, []byte(c.sent))); viaAWS && string(r.NormalizedPath()) != want {
					t.Errorf("NormalizedPath = %q; want %q", r.NormalizedPath(), want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeSignatureMismatch {
				t.Fatalf("got %v; want a signature mismatch", err)
			}
		}
		t.Run("header "+c.sent+" signed "+c.signed, func(t *testing.T) {
			body := "Action=DescribeRegions&Version=2016-11-15"
			s := signing("POST", c.signed)
			s.ContentType, s.Body = "application/x-www-form-urlencoded; charset=utf-8", []byte(body)
			auth, date, _ := Sign(s)
			h := mapHeaders{"Host": {host}, "Authorization": {auth}, "X-Amz-Date": {date}, "Content-Type": {s.ContentType}}
			var r Request
			err := r.Parse([]byte("POST"), []byte(c.sent), nil, []byte(body), true, h)
			if err == nil {
				err = r.Verify(secret, now, Limits{})
			}
			check(t, &r, err)
		})
		for _, signedFor := range []string{"GET", "POST"} {
			t.Run("presigned for "+signedFor+" "+c.sent+" signed "+c.signed, func(t *testing.T) {
				s := signing(signedFor, c.signed)
				s.Query = "Action=DescribeRegions&Version=2016-11-15"
				query, _ := Presign(s, 5*time.Minute)
				var r Request
				err := r.Parse([]byte("GET"), []byte(c.sent), []byte(query), nil, false, mapHeaders{"Host": {host}})
				if err == nil {
					err = r.Verify(secret, now, Limits{})
				}
				check(t, &r, err)
			})
		}
	}
}
