package sigv4

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"slices"
	"time"

	qs "github.com/ec2proxy/ec2proxy/internal/form"
	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// DefaultTimestampWindow applies when Limits.TimestampWindow is zero.
const DefaultTimestampWindow = 300 * time.Second

// Limits are the operator's rules.
type Limits struct {
	// TimestampWindow is how far X-Amz-Date may be from now, either way
	// (a presigned URL may also not be used before X-Amz-Date minus it).
	TimestampWindow time.Duration
	// Regions and Services, if not empty, are the only credential-scope
	// values accepted.
	Regions, Services []string
}

// Verify checks the signature with secret, over the path as received, then
// over its AWS form (appendAWSPath), then freshness against now. On a warm
// signing key it allocates nothing, on success or on mismatch.
func (r *Request) Verify(secret *Secret, now time.Time, limits Limits) error {
	if len(limits.Regions) > 0 && !containsString(limits.Regions, r.region) {
		return r.errorf(CodeScopeNotAllowed, "the credential scope region "+shown(r.region)+" is not served by this endpoint")
	}
	if len(limits.Services) > 0 && !containsString(limits.Services, r.service) {
		return r.errorf(CodeScopeNotAllowed, "the credential scope service "+shown(r.service)+" is not served by this endpoint")
	}
	var bodyHash [64]byte
	h := r.mac.Hash()
	h.Write(r.body)
	appendHex(bodyHash[:0], h.Sum(r.sum[:0]))

	// The payload hash is always the body's: UNSIGNED-PAYLOAD is an S3
	// feature, and accepting it here would leave a form body unsigned.
	if claimed := r.headers.PeekBytes(headerContentSHA256); !r.presigned && len(claimed) > 0 && !bytes.Equal(claimed, bodyHash[:]) {
		return r.errorf(CodeInvalidParameterValue, "the X-Amz-Content-Sha256 header must be the SHA-256 of the body (UNSIGNED-PAYLOAD is not accepted by the EC2 API)")
	}
	// botocore presigns EC2 URLs with the operation's method, POST, although
	// the URL is then fetched with GET; for the Query API both mean the same.
	methods := [2][]byte{r.method, nil}
	if r.presigned && bytes.Equal(r.method, methodGET) {
		methods[1] = methodPOST
	}

	key := secret.signingKey(r.date, r.region, r.service, &r.mac)
	// The path as received first: Keystone's ec2tokens signs it so, and for
	// the usual paths (/, /services/Cloud/) it is also the AWS form. Only if
	// that fails, and the path has an AWS form of its own, that form:
	// botocore, boto 2 and the AWS spec (all services but S3) remove dot
	// segments and empty ones, then percent-encode the path once more.
	matched := r.matches(r.path, &methods, key, bodyHash[:])
	r.awsVerified = false
	if !matched {
		r.awsPath, r.normPath = appendAWSPath(r.awsPath[:0], r.normPath, r.path)
		if !bytes.Equal(r.awsPath, r.path) {
			matched = r.matches(r.awsPath, &methods, key, bodyHash[:])
			r.awsVerified = matched
		}
	}
	if !matched {
		return r.errorf(CodeSignatureMismatch, "the request signature we calculated does not match the signature you provided")
	}
	return r.checkFreshness(now, limits)
}

// matches reports whether the signature is that of the canonical request
// with path and one of methods (the second, if any, is tried only when the
// first does not match).
func (r *Request) matches(path []byte, methods *[2][]byte, key *prehmac.Key, payloadHash []byte) bool {
	matched := false
	for i := 0; i < len(methods) && methods[i] != nil && !matched; i++ {
		r.buildCanonical(methods[i], path, payloadHash)
		r.buildStringToSign()
		got := r.mac.Sum(key, r.sts)
		matched = subtle.ConstantTimeCompare(got, r.signature[:]) == 1
	}
	return matched
}

// appendAWSPath appends path as botocore puts it in the canonical request
// (SigV4Auth._normalize_url_path: quote(normalize_url_path(path),
// safe='/~')): normalized (AppendNormalizedPath), then every byte but A-Z
// a-z 0-9 - _ . ~ and '/' percent-encoded, '%' included (a space sent as
// %20 is signed as %2520). scratch holds the normalized path.
func appendAWSPath(dst, scratch, path []byte) (aws, normalized []byte) {
	normalized = AppendNormalizedPath(scratch[:0], path)
	for rest := normalized; ; {
		i := bytes.IndexByte(rest, '/')
		if i < 0 {
			return qs.AppendEscaped(dst, rest), normalized
		}
		dst = append(qs.AppendEscaped(dst, rest[:i]), '/')
		rest = rest[i+1:]
	}
}

// AppendNormalizedPath appends path as botocore's normalize_url_path
// leaves it: empty and "." segments dropped, each ".." dropping the
// segment before it (none at the root), a trailing '/' kept if a segment
// remains. Dot segments are only the literal "." and ".."; "%2e" is a
// name like any other. A caller that routes requests by path checks that
// a request verified over this form (NormalizedPathVerified) routes as
// its path as received does.
func AppendNormalizedPath(dst, path []byte) []byte {
	start := len(dst)
	segments := 0
	for rest := path; len(rest) > 0; {
		seg := rest
		if i := bytes.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		switch {
		case len(seg) == 0 || len(seg) == 1 && seg[0] == '.':
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if segments > 0 { // a segment holds no '/'
				dst = dst[:start+bytes.LastIndexByte(dst[start:], '/')]
				segments--
			}
		default:
			dst = append(dst, '/')
			dst = append(dst, seg...)
			segments++
		}
	}
	switch {
	case segments == 0:
		if len(path) > 0 && path[0] == '/' {
			dst = append(dst, '/')
		}
	case path[0] != '/': // botocore keeps a relative path relative
		dst = append(dst[:start], dst[start+1:]...)
		fallthrough
	default:
		if path[len(path)-1] == '/' {
			dst = append(dst, '/')
		}
	}
	return dst
}

// NormalizedPathVerified reports whether the last Verify matched over the
// path's AWS form only; NormalizedPath is then that form before its
// percent-encoding. A request for /a/../b/ so verified was signed for
// /b/: a proxy routing by path must not send it where /a/ goes.
func (r *Request) NormalizedPathVerified() bool { return r.awsVerified }

// NormalizedPath is AppendNormalizedPath of the path, after a Verify that
// tried the AWS form; it aliases r's buffer.
func (r *Request) NormalizedPath() []byte { return r.normPath }

func containsString(list []string, b []byte) bool {
	for _, s := range list {
		if s == string(b) {
			return true
		}
	}
	return false
}

var methodGET, methodPOST = []byte("GET"), []byte("POST")

// buildCanonical writes the canonical request for method, path and
// payloadHash.
func (r *Request) buildCanonical(method, path, payloadHash []byte) {
	b := append(r.canonical[:0], method...)
	b = append(b, '\n')
	b = append(b, path...)
	b = append(b, '\n')
	b = r.appendCanonicalQuery(b)
	b = append(b, '\n')
	for rest := r.signedHeaders; len(rest) > 0; {
		name := rest
		if i := bytes.IndexByte(rest, ';'); i >= 0 { // bytes.Cut's general search cost 35 ns a header
			name, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		b = append(b, name...)
		b = append(b, ':')
		b = appendTrimmed(b, r.headers.PeekBytes(name))
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, r.signedHeaders...)
	b = append(b, '\n')
	r.canonical = append(b, payloadHash...)
}

// appendCanonicalQuery encodes every query parameter (but X-Amz-Signature
// of a presigned URL), sorted by encoded name, then encoded value.
func (r *Request) appendCanonicalQuery(b []byte) []byte {
	r.encoded, r.order = r.encoded[:0], r.order[:0]
	for i := 0; i < r.queryParams.Len(); i++ {
		if r.presigned && string(r.queryParams.Name(i)) == "X-Amz-Signature" {
			continue
		}
		var p encPair
		p.start = uint32(len(r.encoded))
		r.encoded = qs.AppendEscaped(r.encoded, r.queryParams.Name(i))
		p.mid = uint32(len(r.encoded))
		r.encoded = qs.AppendEscaped(r.encoded, r.queryParams.Value(i))
		p.end = uint32(len(r.encoded))
		r.order = append(r.order, p)
	}
	enc := r.encoded
	slices.SortFunc(r.order, func(x, y encPair) int {
		return cmp.Or(bytes.Compare(enc[x.start:x.mid], enc[y.start:y.mid]), bytes.Compare(enc[x.mid:x.end], enc[y.mid:y.end]))
	})
	for i, p := range r.order {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, enc[p.start:p.mid]...)
		b = append(b, '=')
		b = append(b, enc[p.mid:p.end]...)
	}
	return b
}

// appendTrimmed appends v without leading and trailing spaces and with runs
// of spaces inside collapsed to one, as AWS canonicalises header values.
func appendTrimmed(b, v []byte) []byte {
	if isTrimmed(v) {
		return append(b, v...) // the usual header value: nothing to trim or collapse
	}
	v = bytes.TrimSpace(v)
	space := false
	for _, c := range v {
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return b
}

// isTrimmed reports that v needs no canonicalising: it does
// not begin or end with a byte bytes.TrimSpace could trim (ASCII space or
// any non-ASCII byte, which might end a Unicode space) and holds no tab and
// no two spaces in a row.
func isTrimmed(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if edge(v[0]) || edge(v[len(v)-1]) || bytes.IndexByte(v, '\t') >= 0 {
		return false
	}
	// Values hold few spaces: jump from one to the next (v cannot end with
	// one, so a byte follows each).
	for i := bytes.IndexByte(v, ' '); i >= 0; i = bytes.IndexByte(v, ' ') {
		if v[i+1] == ' ' {
			return false
		}
		v = v[i+1:]
	}
	return true
}

func edge(c byte) bool { return c <= ' ' || c >= 0x7f }

func (r *Request) buildStringToSign() {
	b := append(r.sts[:0], algorithm...)
	b = append(b, '\n')
	b = append(b, r.amzDate...)
	b = append(b, '\n')
	b = append(b, r.date...)
	b = append(b, '/')
	b = append(b, r.region...)
	b = append(b, '/')
	b = append(b, r.service...)
	b = append(b, '/')
	b = append(b, aws4Request...)
	b = append(b, '\n')
	h := r.mac.Hash()
	h.Write(r.canonical)
	b = appendHex(b, h.Sum(r.sum[:0]))
	r.sts = b
}

// appendHex appends src in lower-case hex, two digits per table load:
// twice per request, it costs a tenth of hex.Encode's byte-by-byte loop
// here. The hashes it encodes are of public data.
func appendHex(dst, src []byte) []byte {
	for _, c := range src {
		dst = append(dst, hexPairs[2*int(c)], hexPairs[2*int(c)+1])
	}
	return dst
}

// hexPairs holds the two hex digits of every byte value, in order.
const hexPairs = "" +
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" +
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" +
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" +
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" +
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" +
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

func (r *Request) checkFreshness(now time.Time, limits Limits) error {
	window := cmp.Or(limits.TimestampWindow, DefaultTimestampWindow)
	date := func() string { return r.when.Format(time.RFC3339) } // only on failure
	age := now.Sub(r.when)                                       // saturates: far ahead is below -window
	switch {
	case age < -window:
		return r.errorf(CodeNotYetValid, "X-Amz-Date "+date()+" is more than "+window.String()+" after the server time "+now.UTC().Format(time.RFC3339)+"; check the client clock")
	case r.presigned && age > r.expires:
		return r.errorf(CodeExpired, "the presigned request expired: X-Amz-Date "+date()+" plus X-Amz-Expires "+r.expires.String()+" is before the server time "+now.UTC().Format(time.RFC3339))
	case !r.presigned && age > window:
		return r.errorf(CodeExpired, "request has expired: X-Amz-Date "+date()+" is more than "+window.String()+" before the server time "+now.UTC().Format(time.RFC3339)+"; check the client clock")
	}
	return nil
}

// CanonicalRequest is the canonical request of the last signature check,
// for a SignatureDoesNotMatch message (AWS shows it too). No secret in it.
func (r *Request) CanonicalRequest() []byte { return r.canonical }

// StringToSign is the string to sign of the last signature check.
func (r *Request) StringToSign() []byte { return r.sts }
