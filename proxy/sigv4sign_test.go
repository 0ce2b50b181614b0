package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// signV4 signs a form POST the way botocore does (content-type, host and
// x-amz-date signed), independently of package sigv4, and returns the
// Authorization and X-Amz-Date header values.
func signV4(host, body, access, secret string, at time.Time) (authorization, amzDate string) {
	return signV4Typed(host, "application/x-www-form-urlencoded; charset=utf-8", body, access, secret, at)
}

// signV4Typed is signV4 with the Content-Type signed as given.
func signV4Typed(host, contentType, body, access, secret string, at time.Time) (authorization, amzDate string) {
	amzDate = at.UTC().Format("20060102T150405Z")
	date := amzDate[:8]
	bodyHash := sha256.Sum256([]byte(body))
	creq := strings.Join([]string{"POST", "/", "",
		"content-type:" + contentType, "host:" + host, "x-amz-date:" + amzDate, "",
		"content-type;host;x-amz-date", hex.EncodeToString(bodyHash[:])}, "\n")
	creqHash := sha256.Sum256([]byte(creq))
	scope := date + "/RegionOne/ec2/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+secret), date), "RegionOne"), "ec2"), "aws4_request")
	return "AWS4-HMAC-SHA256 Credential=" + access + "/" + scope + ", SignedHeaders=content-type;host;x-amz-date, Signature=" +
		hex.EncodeToString(mac(key, sts)), amzDate
}
