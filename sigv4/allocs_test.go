//go:build !race

package sigv4

import (
	"os"
	"strings"
	"testing"
	"time"
)

// With the signing key of the scope already derived, verifying allocates
// nothing, whether the signature matches or not.
func TestVerifyAllocs(t *testing.T) {
	for _, name := range []string{"post-x-www-form-urlencoded-parameters", "get-vanilla-query-order-encoded"} {
		t.Run(name, func(t *testing.T) {
			sreq, err := os.ReadFile("testdata/aws-testsuite/" + name + "/" + name + ".sreq")
			if err != nil {
				t.Fatal(err)
			}
			w := parseWire(t, sreq)
			now, _ := parseAmzDate([]byte(suiteDate))
			secret := NewSecret([]byte(suiteSecret))
			wrong := NewSecret([]byte("not the secret"))
			method, path, query := []byte(w.method), []byte(w.path), []byte(w.query)
			var r Request
			verify := func(s *Secret) error {
				if err := r.Parse(method, path, query, w.body, true, w.headers); err != nil {
					return err
				}
				return r.Verify(s, now, Limits{})
			}
			if err := verify(secret); err != nil {
				t.Fatal(err)
			}
			verify(wrong)
			// mapHeaders.Peek allocates ([]byte(string)); measure with a
			// header source that does not, as fasthttp's does not.
			hdrs := newStaticHeaders(w.headers)
			verify = func(s *Secret) error {
				if err := r.Parse(method, path, query, w.body, true, hdrs); err != nil {
					return err
				}
				return r.Verify(s, now, Limits{})
			}
			if n := testing.AllocsPerRun(200, func() { verify(secret) }); n != 0 {
				t.Errorf("a verified request allocates %v times", n)
			}
			if n := testing.AllocsPerRun(200, func() { verify(wrong) }); n != 0 {
				t.Errorf("a signature mismatch allocates %v times", n)
			}
		})
	}
}

// A request that verifies only with its path's AWS form, on the last
// candidate (a presigned GET signed for POST), or not at all, allocates
// nothing either once the Request has verified one such path.
func TestVerifyAllocsAWSPath(t *testing.T) {
	const host = "ec2.example.com:8773"
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	secret, wrong := NewSecret([]byte("secret")), NewSecret([]byte("not the secret"))
	query, _ := Presign(Signing{
		Method: "POST", Host: host, Path: "/services/a%257Eb/", Query: "Action=DescribeRegions&Version=2016-11-15",
		AccessKey: "AK", Secret: "secret", Region: "RegionOne", Service: "ec2", Time: now,
	}, 5*time.Minute)
	method, path, q := []byte("GET"), []byte("/services/./a%7Eb/"), []byte(query)
	hdrs := staticHeaders{"Host": []byte(host), "host": []byte(host)}
	var r Request
	verify := func(s *Secret) error {
		if err := r.Parse(method, path, q, nil, false, hdrs); err != nil {
			return err
		}
		return r.Verify(s, now, Limits{})
	}
	if err := verify(secret); err != nil {
		t.Fatalf("%v\n%s", err, r.CanonicalRequest())
	}
	if got, want := string(r.CanonicalRequest()), "POST\n/services/a%257Eb/\n"; !strings.HasPrefix(got, want) {
		t.Fatalf("verified with the canonical request\n%s\nwant it to start %q", got, want)
	}
	verify(wrong)
	if n := testing.AllocsPerRun(200, func() { verify(secret) }); n != 0 {
		t.Errorf("a request verified with its path's AWS form allocates %v times", n)
	}
	if n := testing.AllocsPerRun(200, func() { verify(wrong) }); n != 0 {
		t.Errorf("a signature mismatch on both paths allocates %v times", n)
	}
}
