package sigv4

import (
	"os"
	"strings"
	"testing"
	"time"
)

// Sign must reproduce the AWS suite's signature, and what it signs must
// verify, in both forms.
func TestSignAgainstSuiteAndVerifier(t *testing.T) {
	at, _ := parseAmzDate([]byte(suiteDate))
	authz, _ := os.ReadFile("testdata/aws-testsuite/get-vanilla-query-order-encoded/get-vanilla-query-order-encoded.authz")
	got, _, _ := Sign(Signing{Method: "GET", Host: "example.amazonaws.com", Path: "/", Query: "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
		AccessKey: "AKIDEXAMPLE", Secret: suiteSecret, Region: "us-east-1", Service: "service", Time: at})
	if got != strings.TrimSpace(string(authz)) {
		t.Errorf("Sign =\n%s\nwant\n%s", got, authz)
	}

	s := Signing{Method: "POST", Host: "127.0.0.1:8773", Path: "/services/Cloud/", ContentType: "application/x-www-form-urlencoded; charset=utf-8",
		Body: []byte("Action=DescribeRegions&Version=2016-11-15"), AccessKey: "AK", Secret: "SK", Region: "RegionOne", Service: "ec2", Time: at}
	auth, date, _ := Sign(s)
	h := mapHeaders{"Host": {s.Host}, "Authorization": {auth}, "X-Amz-Date": {date}, "Content-Type": {s.ContentType}}
	var r Request
	if err := r.Parse([]byte("POST"), []byte(s.Path), nil, s.Body, true, h); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(NewSecret([]byte("SK")), at.Add(time.Minute), Limits{}); err != nil {
		t.Errorf("signed POST does not verify: %v", err)
	}

	s.Method, s.Body, s.ContentType, s.Query = "GET", nil, "", "Action=DescribeInstances&Filter.1.Value.1=a%20b%3Bc"
	q, _ := Presign(s, 5*time.Minute)
	if err := r.Parse([]byte("GET"), []byte(s.Path), []byte(q), nil, false, mapHeaders{"Host": {s.Host}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(NewSecret([]byte("SK")), at.Add(4*time.Minute), Limits{}); err != nil {
		t.Errorf("presigned GET does not verify: %v", err)
	}
	if err := r.Verify(NewSecret([]byte("SK")), at.Add(6*time.Minute), Limits{}); err == nil || err.(*Error).Code != CodeExpired {
		t.Errorf("presigned GET after expiry: %v; want expired", err)
	}
}

// Signing with a Key (its signing keys derived once and kept) gives the
// same signatures as with the Secret string, for the AWS suite's request
// and across two dates and regions on one Key.
func TestSignWithKey(t *testing.T) {
	at, _ := parseAmzDate([]byte(suiteDate))
	authz, _ := os.ReadFile("testdata/aws-testsuite/get-vanilla-query-order-encoded/get-vanilla-query-order-encoded.authz")
	key := NewSecret([]byte(suiteSecret))
	s := Signing{Method: "GET", Host: "example.amazonaws.com", Path: "/", Query: "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
		AccessKey: "AKIDEXAMPLE", Key: key, Region: "us-east-1", Service: "service", Time: at}
	if got, _, _ := Sign(s); got != strings.TrimSpace(string(authz)) {
		t.Errorf("Sign with Key =\n%s\nwant\n%s", got, authz)
	}
	for _, c := range []struct {
		at     time.Time
		region string
	}{{at, "us-east-1"}, {at.Add(24 * time.Hour), "us-east-1"}, {at, "RegionOne"}, {at, "us-east-1"}} {
		withKey, withSecret := s, s
		withKey.Time, withKey.Region = c.at, c.region
		withSecret.Time, withSecret.Region, withSecret.Key, withSecret.Secret = c.at, c.region, nil, suiteSecret
		a, _, _ := Sign(withKey)
		b, _, _ := Sign(withSecret)
		if a != b {
			t.Errorf("%v %s: with Key %s; with Secret %s", c.at, c.region, a, b)
		}
	}
}
