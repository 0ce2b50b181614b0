// Package sigv4 verifies AWS Signature Version 4 on EC2 Query API requests,
// in both forms: the Authorization header and the presigned query
// (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
// X-Amz-SignedHeaders, X-Amz-Signature).
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
//
//	CanonicalRequest = Method \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n PayloadHash
//	StringToSign     = "AWS4-HMAC-SHA256" \n X-Amz-Date \n Date/Region/Service/aws4_request \n hex(SHA256(CanonicalRequest))
//	Signature        = hex(HMAC(SigningKey, StringToSign))
//
// Region and service are whatever the client put in its credential scope
// (boto 2 derives them from the host name); an operator may restrict them.
// The package is pure: no I/O, no clock (time is passed in), no globals.
package sigv4

import (
	"bytes"
	"strconv"
	"time"

	qs "github.com/ec2proxy/ec2proxy/internal/form"
	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// Headers gives a request header's value by name, case-insensitively
// (*fasthttp.RequestHeader does, without allocating). A missing header is
// nil.
type Headers interface {
	PeekBytes(name []byte) []byte
}

// Request is one parsed SigV4 request. Reuse it with Parse; it is not safe
// for concurrent use. Slices it returns alias the caller's buffers and its
// own, valid until the next Parse.
type Request struct {
	method, path, body []byte
	headers            Headers
	presigned          bool

	accessKey, date, region, service []byte // credential scope
	signedHeaders                    []byte // as the client listed them, ';'-separated
	signature                        [32]byte
	amzDate                          []byte
	when                             time.Time
	expires                          time.Duration // presigned only
	action                           []byte

	params      qs.Params // query and form parameters, sorted, for Action and duplicates
	queryParams qs.Params // query parameters only, for the canonical query
	encoded     []byte    // encoded query pairs
	order       []encPair
	awsPath     []byte // the path as AWS clients sign it (appendAWSPath)
	normPath    []byte // ... before its percent-encoding
	awsVerified bool   // the last Verify matched over awsPath only
	canonical   []byte // canonical request
	sts         []byte // string to sign
	mac         prehmac.MAC
	sum         [32]byte
	err         Error
}

type encPair struct{ start, mid, end uint32 } // name is [start,mid), value [mid,end)

// IsSigV4 reports whether a request is signed with SigV4: an Authorization
// header starting AWS4-HMAC-SHA256, or a presigned query.
func IsSigV4(authorization, rawQuery []byte) bool {
	return bytes.HasPrefix(authorization, algorithm) || bytes.Contains(rawQuery, []byte("X-Amz-Algorithm="))
}

var (
	algorithm   = []byte("AWS4-HMAC-SHA256")
	aws4Request = []byte("aws4_request")
	hostName    = []byte("host")
)

// MaxPresignExpiry is the longest X-Amz-Expires AWS accepts: 7 days.
const MaxPresignExpiry = 7 * 24 * time.Hour

// Parse reads a request: method and path exactly as received, the raw query
// string, the raw body, whether the body is a form (its parameters then
// join the query's for Action and duplicate checks), and the headers. It
// checks everything that needs no secret.
func (r *Request) Parse(method, path, query, body []byte, isForm bool, h Headers) error {
	r.method, r.path, r.body, r.headers = method, path, body, h
	r.params.Reset()
	r.queryParams.Reset()
	r.action, r.accessKey, r.amzDate = nil, nil, nil
	r.expires = 0
	if len(r.path) == 0 {
		r.path = slash
	}
	if err := r.parseParams(&r.queryParams, query); err != nil {
		return err
	}
	if err := r.parseParams(&r.params, query); err != nil {
		return err
	}
	if isForm {
		if err := r.parseParams(&r.params, body); err != nil {
			return err
		}
	}
	r.params.SortByName()
	if dup := r.params.Duplicate(); dup != nil {
		return r.errorf(CodeDuplicateParameter, "parameter "+shown(dup)+" is given more than once; each parameter may appear only once")
	}
	if i := r.params.Index("Action"); i >= 0 {
		r.action = r.params.Value(i)
	}

	auth := h.PeekBytes(headerAuthorization)
	if len(auth) > 0 && !bytes.HasPrefix(auth, algorithm) && r.queryParams.Index("X-Amz-Algorithm") >= 0 {
		auth = nil // a presigned URL: the header is another layer's (a gateway's Basic)
	}
	if len(auth) > 0 {
		if err := r.parseAuthorization(auth); err != nil {
			return err
		}
		r.amzDate = h.PeekBytes(headerAmzDate)
		if len(r.amzDate) == 0 {
			return r.errorf(CodeMissingParameter, "a request signed with Signature Version 4 must carry an X-Amz-Date header")
		}
	} else if err := r.parsePresigned(); err != nil {
		return err
	}
	t, ok := parseAmzDate(r.amzDate)
	if !ok {
		return r.errorf(CodeIncompleteSignature, "X-Amz-Date must look like 20261125T103921Z")
	}
	r.when = t
	if !bytes.Equal(r.amzDate[:8], r.date) {
		return r.errorf(CodeIncompleteSignature, "the credential scope date "+string(r.date)+" is not the date of X-Amz-Date "+string(r.amzDate))
	}
	if !containsHost(r.signedHeaders) {
		return r.errorf(CodeIncompleteSignature, "the host header must be among the signed headers")
	}
	return nil
}

var (
	slash               = []byte("/")
	headerAuthorization = []byte("Authorization")
	headerAmzDate       = []byte("X-Amz-Date")
	headerContentSHA256 = []byte("X-Amz-Content-Sha256")
)

func (r *Request) parseParams(p *qs.Params, raw []byte) error {
	switch problem, name := p.Parse(raw); problem {
	case qs.OK:
		return nil
	case qs.BadValueEncoding:
		return r.errorf(CodeMalformedEncoding, "invalid percent-encoding in the value of parameter "+shown(name))
	case qs.ValueNotUTF8:
		return r.errorf(CodeMalformedEncoding, "the value of parameter "+shown(name)+" is not valid UTF-8")
	case qs.RawSemicolon:
		if name == nil {
			return r.errorf(CodeMalformedEncoding, "a parameter name contains ';': percent-encode it as %3B")
		}
		return r.errorf(CodeMalformedEncoding, "the value of parameter "+shown(name)+" contains ';': percent-encode it as %3B")
	case qs.TooMany:
		return r.errorf(CodeMalformedEncoding, "the request has more than "+strconv.Itoa(qs.MaxParams)+" parameters")
	default:
		return r.errorf(CodeMalformedEncoding, "a parameter name is empty, not valid UTF-8, or badly percent-encoded")
	}
}

// shown bounds a client-chosen name for an error message.
func shown(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

// AccessKeyID is the access key of the credential scope.
func (r *Request) AccessKeyID() []byte { return r.accessKey }

// Action is the Action parameter (empty if absent: SigV4 itself does not
// need one; the EC2 API does).
func (r *Request) Action() []byte { return r.action }

// Scope returns the region and service the client signed for.
func (r *Request) Scope() (region, service []byte) { return r.region, r.service }

// Signature is the decoded signature the client sent.
func (r *Request) Signature() []byte { return r.signature[:] }

// Expires is a presigned URL's validity (X-Amz-Expires); 0 for the header form.
func (r *Request) Expires() time.Duration { return r.expires }

// Presigned reports whether the signature came in the query string.
func (r *Request) Presigned() bool { return r.presigned }

// parseAmzDate parses YYYYMMDDTHHMMSSZ.
func parseAmzDate(b []byte) (time.Time, bool) {
	if len(b) != 16 || b[8] != 'T' || b[15] != 'Z' {
		return time.Time{}, false
	}
	var n [6]int
	for i, span := range [6][2]int{{0, 4}, {4, 6}, {6, 8}, {9, 11}, {11, 13}, {13, 15}} {
		for _, c := range b[span[0]:span[1]] {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			n[i] = n[i]*10 + int(c-'0')
		}
	}
	if n[1] < 1 || n[1] > 12 || n[2] < 1 || n[3] > 23 || n[4] > 59 || n[5] > 59 {
		return time.Time{}, false
	}
	t := time.Date(n[0], time.Month(n[1]), n[2], n[3], n[4], n[5], 0, time.UTC)
	return t, t.Day() == n[2]
}

func containsHost(signedHeaders []byte) bool {
	for rest := signedHeaders; len(rest) > 0; {
		var name []byte
		name, rest, _ = bytes.Cut(rest, []byte{';'})
		if bytes.Equal(name, hostName) {
			return true
		}
	}
	return false
}
