package sigv4

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"time"
)

// parseAuthorization reads
//
//	AWS4-HMAC-SHA256 Credential=AK/20261125/region/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
//
// Parts are separated by ',' with optional spaces (boto 2 writes none).
func (r *Request) parseAuthorization(auth []byte) error {
	r.presigned = false
	rest, ok := bytes.CutPrefix(auth, algorithm)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return r.errorf(CodeIncompleteSignature, "the Authorization header must start with AWS4-HMAC-SHA256")
	}
	var credential, signedHeaders, signature []byte
	for part := range bytes.SplitSeq(rest, []byte{','}) {
		part = bytes.TrimSpace(part)
		name, value, ok := bytes.Cut(part, []byte{'='})
		if !ok {
			return r.errorf(CodeIncompleteSignature, "the Authorization header has a part without '=': it needs Credential=, SignedHeaders= and Signature=")
		}
		switch string(name) {
		case "Credential":
			credential = value
		case "SignedHeaders":
			signedHeaders = value
		case "Signature":
			signature = value
		default:
			return r.errorf(CodeIncompleteSignature, "the Authorization header has an unknown part "+shown(name))
		}
	}
	return r.setAuth(credential, signedHeaders, signature, "Authorization header")
}

// parsePresigned reads the X-Amz-* query parameters of a presigned URL.
func (r *Request) parsePresigned() error {
	r.presigned = true
	get := func(name string) []byte {
		if i := r.queryParams.Index(name); i >= 0 {
			return r.queryParams.Value(i)
		}
		return nil
	}
	if !bytes.Equal(get("X-Amz-Algorithm"), algorithm) {
		return r.errorf(CodeIncompleteSignature, "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
	}
	r.amzDate = get("X-Amz-Date")
	if len(r.amzDate) == 0 {
		return r.errorf(CodeMissingParameter, "a presigned request must contain X-Amz-Date")
	}
	exp := get("X-Amz-Expires")
	seconds, err := strconv.ParseUint(string(exp), 10, 32) // short string: no allocation
	switch {
	case len(exp) == 0:
		return r.errorf(CodeMissingParameter, "a presigned request must contain X-Amz-Expires")
	case err != nil:
		return r.errorf(CodeInvalidParameterValue, "X-Amz-Expires must be a number of seconds")
	case time.Duration(seconds)*time.Second > MaxPresignExpiry:
		return r.errorf(CodeInvalidParameterValue, "X-Amz-Expires must be at most 604800 seconds (7 days)")
	}
	r.expires = time.Duration(seconds) * time.Second
	return r.setAuth(get("X-Amz-Credential"), get("X-Amz-SignedHeaders"), get("X-Amz-Signature"), "presigned query")
}

func (r *Request) setAuth(credential, signedHeaders, signature []byte, where string) error {
	switch {
	case len(credential) == 0:
		return r.errorf(CodeIncompleteSignature, "the "+where+" lacks the Credential")
	case len(signedHeaders) == 0:
		return r.errorf(CodeIncompleteSignature, "the "+where+" lacks SignedHeaders")
	case len(signature) == 0:
		return r.errorf(CodeIncompleteSignature, "the "+where+" lacks the Signature")
	}
	// Credential = access key / date / region / service / aws4_request
	var parts [5][]byte
	rest := credential
	for i := range parts {
		var ok bool
		if i == 4 {
			parts[i] = rest
			break
		}
		if parts[i], rest, ok = bytes.Cut(rest, []byte{'/'}); !ok {
			return r.errorf(CodeIncompleteSignature, "the Credential must be access-key/YYYYMMDD/region/service/aws4_request")
		}
	}
	if len(parts[0]) == 0 || len(parts[1]) != 8 || len(parts[2]) == 0 || len(parts[3]) == 0 || !bytes.Equal(parts[4], aws4Request) {
		return r.errorf(CodeIncompleteSignature, "the Credential must be access-key/YYYYMMDD/region/service/aws4_request")
	}
	r.accessKey, r.date, r.region, r.service = parts[0], parts[1], parts[2], parts[3]
	r.signedHeaders = signedHeaders
	if len(signature) != 64 {
		return r.errorf(CodeIncompleteSignature, "the Signature must be 64 hexadecimal digits")
	}
	if _, err := hex.Decode(r.signature[:], signature); err != nil {
		return r.errorf(CodeIncompleteSignature, "the Signature must be 64 hexadecimal digits")
	}
	return nil
}
