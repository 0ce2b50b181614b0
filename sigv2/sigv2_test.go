package sigv2

import (
	"testing"
	"time"
)

// The OpenStack documentation's worked example (nova EC2 API, 2013).
const (
	publishedSecret = "921a3445e0c2485d83458251d1803219"
	publishedSTS    = "POST\n172.25.16.1:8773\n/services/Cloud/\nAWSAccessKeyId=14d40f23e54148579ea559c07bfaa42a&Action=DescribeAvailabilityZones&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2013-12-31T14%3A34%3A25Z&Version=2010-08-31"
	publishedSig    = "doK1P+ImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg="
	publishedBody   = "AWSAccessKeyId=14d40f23e54148579ea559c07bfaa42a&Action=DescribeAvailabilityZones&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2013-12-31T14%3A34%3A25Z&Version=2010-08-31&Signature=doK1P%2BImDAr9YXpWbH6pFHNJtBbNrWMB9lrKqawIkMg%3D"
)

var publishedTime = time.Date(2013, 12, 31, 14, 34, 25, 0, time.UTC)

func TestPublishedVector(t *testing.T) {
	key := NewKey([]byte(publishedSecret))
	if got := key.Sign(HmacSHA256, []byte(publishedSTS)); got != publishedSig {
		t.Fatalf("Sign = %s; want %s", got, publishedSig)
	}
	var r Request
	if err := r.Parse([]byte("POST"), []byte("172.25.16.1:8773"), []byte("/services/Cloud/"), nil, []byte(publishedBody)); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := string(r.AppendStringToSign(nil, 0)); got != publishedSTS {
		t.Errorf("AppendStringToSign =\n%q\nwant\n%q", got, publishedSTS)
	}
	if err := r.Verify(key, publishedTime.Add(time.Minute), Limits{}); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := r.Verify(NewKey([]byte("wrong")), publishedTime, Limits{}); !hasCode(err, CodeSignatureMismatch) {
		t.Errorf("Verify with wrong secret = %v; want SignatureMismatch", err)
	}
	if got := string(r.AccessKeyID()); got != "14d40f23e54148579ea559c07bfaa42a" {
		t.Errorf("AccessKeyID = %q", got)
	}
	if got := string(r.Action()); got != "DescribeAvailabilityZones" {
		t.Errorf("Action = %q", got)
	}
}

func hasCode(err error, code Code) bool {
	e, ok := err.(*Error)
	return ok && e.Code == code
}

func TestStringToSignMatchesPublished(t *testing.T) {
	got := StringToSign("POST", "172.25.16.1:8773", "/services/Cloud/", []Pair{
		{"Version", "2010-08-31"}, {"Timestamp", "2013-12-31T14:34:25Z"}, {"SignatureVersion", "2"},
		{"SignatureMethod", "HmacSHA256"}, {"Action", "DescribeAvailabilityZones"},
		{"AWSAccessKeyId", "14d40f23e54148579ea559c07bfaa42a"}, {"Signature", "ignored"},
	})
	if string(got) != publishedSTS {
		t.Errorf("StringToSign =\n%q\nwant\n%q", got, publishedSTS)
	}
}
