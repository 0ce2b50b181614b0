// Package sigv2 parses EC2 Query API requests and verifies AWS Signature
// Version 2 (HmacSHA256 and HmacSHA1):
//
//	StringToSign = HTTPVerb + "\n" + lowercase(Host) + "\n" + HTTPRequestURI + "\n" + CanonicalizedQueryString
//
// where the canonical query is every parameter but Signature, sorted by the
// byte order of the decoded names, RFC 3986-encoded and joined with '&'.
// See https://docs.aws.amazon.com/general/latest/gr/signature-version-2.html.
//
// The package is pure: no I/O, no clock (time is passed in), no globals.
package sigv2

import (
	"bytes"
	"time"

	qs "github.com/ec2proxy/ec2proxy/internal/form"
	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// Request is one parsed EC2 Query request. The zero value is ready to use;
// Reset makes it reusable, keeping its buffers, so a pool of Requests parses
// and verifies without allocating. A Request is not safe for concurrent use.
// Slices its methods return alias the buffers given to Parse or its own:
// copy what must outlive the next Parse or Reset, or a change to those
// buffers.
type Request struct {
	method, host, path []byte // as received; they alias the caller's buffers

	params qs.Params // sorted by name after Parse

	// indexes into params of the parameters the protocol uses, -1 if absent
	accessKey, signature, sigMethod, sigVersion, timestamp, expires, action int

	method2   SignatureMethod
	when      time.Time // Timestamp or Expires
	isExpires bool

	sts       []byte // string to sign, built by Verify
	hostLower []byte
	scratch   []byte
	mac       prehmac.MAC
	err       Error
}

// Reset clears r for reuse.
func (r *Request) Reset() {
	r.method, r.host, r.path = nil, nil, nil
	r.params.Reset()
	r.sts = r.sts[:0]
	r.scratch = r.scratch[:0]
	r.hostLower = r.hostLower[:0]
	r.method2, r.when, r.isExpires = 0, time.Time{}, false
	r.accessKey, r.signature, r.sigMethod, r.sigVersion, r.timestamp, r.expires, r.action = -1, -1, -1, -1, -1, -1, -1
	r.err = Error{}
}

// SetHost replaces the host the request is verified against (after Parse):
// a caller with other names the client may have signed (a balancer's
// X-Forwarded-Host) verifies again with each. host is aliased, not copied.
func (r *Request) SetHost(host []byte) { r.host = host }

// Parse reads a request: method, Host header and path exactly as received,
// the raw query string, and the raw application/x-www-form-urlencoded body
// (nil unless it is a form POST). Query and body parameters form one set, all
// of which must be signed. The slices must stay unchanged until r is Reset.
//
// Parse checks everything that needs no secret: required parameters,
// SignatureVersion 2, SignatureMethod, and the Timestamp or Expires format.
func (r *Request) Parse(method, host, path, query, body []byte) error {
	r.Reset()
	r.method, r.host, r.path = method, host, path
	if len(r.path) == 0 {
		r.path = slash
	}
	if err := r.parseParams(query); err != nil {
		return err
	}
	if err := r.parseParams(body); err != nil {
		return err
	}
	if err := r.sortAndCheckDuplicates(); err != nil {
		return err
	}
	r.indexWellKnown()

	switch v := r.paramValue(r.sigVersion); {
	case r.sigVersion < 0:
		return r.errorf(CodeMissingParameter, "SignatureVersion", "the request must contain the parameter SignatureVersion (2), or be signed with Signature Version 4")
	case bytes.Equal(v, two):
	case bytes.Equal(v, zero) || bytes.Equal(v, one):
		return r.errorf(CodeUnsupportedSignatureVersion, "SignatureVersion", "SignatureVersion "+string(v)+" is not accepted: sign requests with SignatureVersion 2 (HmacSHA256) or Signature Version 4")
	default:
		return r.errorf(CodeInvalidParameterValue, "SignatureVersion", "SignatureVersion must be 2 (or use Signature Version 4)")
	}
	for _, required := range [...]struct {
		idx  int
		name string
	}{{r.accessKey, "AWSAccessKeyId"}, {r.signature, "Signature"}, {r.sigMethod, "SignatureMethod"}, {r.action, "Action"}} {
		if required.idx < 0 || required.name != "SignatureMethod" && len(r.paramValue(required.idx)) == 0 {
			return r.errorf(CodeMissingParameter, required.name, "the request must contain the parameter "+required.name+" with a value")
		}
	}
	switch v := r.paramValue(r.sigMethod); {
	case bytes.Equal(v, nameHmacSHA256):
		r.method2 = HmacSHA256
	case bytes.Equal(v, nameHmacSHA1):
		r.method2 = HmacSHA1
	default:
		return r.errorf(CodeUnsupportedSignatureMethod, "SignatureMethod", "SignatureMethod must be HmacSHA256 or HmacSHA1")
	}
	switch {
	case r.timestamp >= 0 && r.expires >= 0:
		return r.errorf(CodeParameterCombination, "Timestamp", "the request must contain Timestamp or Expires, not both")
	case r.timestamp >= 0:
		return r.parseTime(r.timestamp, "Timestamp", false)
	case r.expires >= 0:
		return r.parseTime(r.expires, "Expires", true)
	}
	return r.errorf(CodeMissingParameter, "Timestamp", "the request must contain the parameter Timestamp (or Expires)")
}

func (r *Request) parseTime(idx int, name string, isExpires bool) error {
	t, ok := ParseTimestamp(r.paramValue(idx))
	if !ok {
		return r.errorf(CodeInvalidParameterValue, name, name+" must be an ISO 8601 time such as 2026-11-25T10:39:21Z")
	}
	r.when, r.isExpires = t, isExpires
	return nil
}

var (
	slash          = []byte("/")
	zero, one, two = []byte("0"), []byte("1"), []byte("2")
	nameHmacSHA256 = []byte("HmacSHA256")
	nameHmacSHA1   = []byte("HmacSHA1")
)

func (r *Request) indexWellKnown() {
	for i := 0; i < r.params.Len(); i++ {
		switch string(r.params.Name(i)) { // no allocation: the compiler compares in place
		case "AWSAccessKeyId":
			r.accessKey = i
		case "Signature":
			r.signature = i
		case "SignatureMethod":
			r.sigMethod = i
		case "SignatureVersion":
			r.sigVersion = i
		case "Timestamp":
			r.timestamp = i
		case "Expires":
			r.expires = i
		case "Action":
			r.action = i
		}
	}
}

func (r *Request) paramValue(idx int) []byte {
	if idx < 0 || idx >= r.params.Len() { // also a zero or Reset Request
		return nil
	}
	return r.params.Value(idx)
}

// AccessKeyID is the AWSAccessKeyId parameter.
func (r *Request) AccessKeyID() []byte { return r.paramValue(r.accessKey) }

// Action is the Action parameter.
func (r *Request) Action() []byte { return r.paramValue(r.action) }

// Signature is the Signature parameter as sent (decoded from the form).
func (r *Request) Signature() []byte { return r.paramValue(r.signature) }

// SignatureMethod is the HMAC the client used.
func (r *Request) SignatureMethod() SignatureMethod { return r.method2 }

// Param returns the decoded value of the named parameter.
func (r *Request) Param(name string) ([]byte, bool) {
	if i := r.params.Index(name); i >= 0 {
		return r.params.Value(i), true
	}
	return nil, false
}
