package test

import (
	"net/url"
	"strings"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
)

// signV2 returns the parameters of a SigV2 (HmacSHA256) request for method,
// host and path, signed with secret: DescribeRegions unless params say
// otherwise (params are added on top, and replace the defaults).
func signV2(method, host, path, access, secret string, params map[string]string) url.Values {
	p := map[string]string{
		"AWSAccessKeyId": access, "Action": "DescribeRegions", "Version": "2016-11-15",
		"SignatureMethod": "HmacSHA256", "SignatureVersion": "2", "Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05Z"),
	}
	for k, v := range params {
		p[k] = v
	}
	var pairs []sigv2.Pair
	form := url.Values{}
	for k, v := range p {
		pairs = append(pairs, sigv2.Pair{Name: k, Value: v})
		form.Set(k, v)
	}
	form.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign(method, host, path, pairs)))
	return form
}

// encodeRFC3986 encodes a form as EC2 clients put it on the wire (%20, not +).
func encodeRFC3986(form url.Values) string {
	return strings.ReplaceAll(form.Encode(), "+", "%20")
}
