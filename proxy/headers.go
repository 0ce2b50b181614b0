package proxy

import "bytes"

// hopByHop are the headers that describe one connection, not the request
// (RFC 9110 section 7.6.1), as net/http/httputil strips them.
var hopByHop = [][]byte{
	[]byte("connection"), []byte("proxy-connection"), []byte("keep-alive"), []byte("proxy-authenticate"),
	[]byte("proxy-authorization"), []byte("te"), []byte("trailer"), []byte("transfer-encoding"), []byte("upgrade"),
}

// notForwarded reports a client header the backend must not get: a
// hop-by-hop one (or one the Connection header lists), one carrying
// identity or forwarding context, an Authorization that is not SigV4's,
// or one with an underscore (WSGI servers
// map X_Roles and X-Roles to one variable, so it would join our value).
func notForwarded(name, value, connection []byte) bool {
	return isHopByHop(name) || isListedIn(connection, name) && !isMessageHeader(name) || isSpoofable(name) ||
		bytes.IndexByte(name, '_') >= 0 || isForeignAuthorization(name, value)
}

// isForeignAuthorization reports an Authorization header that is not a
// SigV4 signature: a gateway's own credentials (Basic) beside a presigned
// URL, which the backend has no use for and must not see.
func isForeignAuthorization(name, value []byte) bool {
	return len(name) == len("authorization") && name[0]|0x20 == 'a' && bytes.EqualFold(name, []byte("authorization")) &&
		!bytes.HasPrefix(value, []byte("AWS4-HMAC-SHA256"))
}

// isMessageHeader reports Host and Content-Type, which describe the
// request, not the connection, whatever the Connection header says: a
// client listing them (found by a review) made the loop send a request
// without Host, and the goroutine pipeline a 502 blaming the backend.
func isMessageHeader(name []byte) bool {
	return bytes.EqualFold(name, []byte("host")) || bytes.EqualFold(name, []byte("content-type"))
}

func isHopByHop(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 { // most headers are ruled out by their first letter
	case 'c', 'p', 'k', 't', 'u':
	default:
		return false
	}
	for _, h := range hopByHop {
		if len(name) == len(h) && bytes.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// isListedIn reports whether name is one of the comma-separated tokens of
// a Connection header value: those headers are hop-by-hop too.
func isListedIn(connection, name []byte) bool {
	for len(connection) > 0 {
		var token []byte
		if i := bytes.IndexByte(connection, ','); i >= 0 {
			token, connection = connection[:i], connection[i+1:]
		} else {
			token, connection = connection, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(token), name) {
			return true
		}
	}
	return false
}

// spoofablePrefixes start every header that carries identity or request
// context to an OpenStack service (keystonemiddleware's auth_token set, its
// deprecated aliases, service-token variants), and forwarding headers that
// ec2proxy sets itself. A client must never choose any of them.
var spoofablePrefixes = [][]byte{
	[]byte("x-auth-"), []byte("x-identity-"), []byte("x-service-"), []byte("x-user"), []byte("x-project-"),
	[]byte("x-tenant"), []byte("x-domain-"), []byte("x-role"), []byte("x-trust"), []byte("x-is-admin"),
	[]byte("x-subject-token"), []byte("x-storage-token"), []byte("x-app-cred"), []byte("openstack-system-scope"),
	[]byte("x-forwarded-"), []byte("forwarded"), []byte("x-real-ip"), []byte("x-request-id"), []byte("x-openstack-request-id"),
}

func isSpoofable(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 { // the first letters of spoofablePrefixes
	case 'x', 'f', 'o':
	default:
		return false
	}
	for _, p := range spoofablePrefixes {
		// The third letter first: most candidates fail there without a call.
		if len(name) >= len(p) && name[2]|0x20 == p[2] && bytes.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	return false
}

var (
	transferEncoding = []byte("transfer-encoding")
	chunked          = []byte("chunked")
)

// checkHeaders scans the raw header block, as fasthttp accepted it, once,
// and reports a Transfer-Encoding header whose value is anything but
// "chunked" (a balancer in front may frame the body differently:
// smuggling), and the first header name that is not an RFC 9110 token. Such a name ("X Roles")
// passes fasthttp and matches no spoofable prefix, while Python's header
// parser (eventlet under nova) stops at it: the headers after it, ours
// among them, would be read as the body. It allocates nothing.
func checkHeaders(raw []byte) (badTE bool, badName []byte) {
	// Per line: IndexByte and a loop over leading blanks, not bytes.Cut and
	// bytes.TrimLeft (a character set built per call): every forwarded
	// request comes through here, and those were 4% of the loop's work.
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		blank := 0
		for blank < len(line) && (line[blank] == ' ' || line[blank] == '\t') {
			blank++
		}
		if blank == 0 && badName == nil { // not an obs-fold continuation: a name
			// fasthttp's header scanner refuses every other byte that is
			// not a token's (TestCheckHeadersCoversWhatFasthttpLetsThrough):
			// a compare per byte, not a table lookup (half the cost).
			for i := 0; i < len(line) && line[i] != ':'; i++ {
				if line[i] == ' ' {
					badName, _, _ = bytes.Cut(line, []byte{':'})
					break
				}
			}
		}
		name := line[blank:]
		if len(name) < len(transferEncoding) || name[0]|0x20 != 't' { // most lines, at a glance
			continue
		}
		name, value, ok := bytes.Cut(name, []byte{':'})
		if ok && bytes.EqualFold(bytes.TrimSpace(name), transferEncoding) &&
			!bytes.EqualFold(bytes.TrimSpace(value), chunked) {
			badTE = true
		}
	}
	return badTE, badName
}
