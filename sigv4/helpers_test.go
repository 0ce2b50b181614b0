package sigv4

import (
	"net/textproto"
	"strings"
)

// staticHeaders answers Peek without allocating, as fasthttp's header does:
// every name is stored canonical and lower-case.
type staticHeaders map[string][]byte

func newStaticHeaders(h mapHeaders) staticHeaders {
	s := staticHeaders{}
	for k, v := range h {
		s[textproto.CanonicalMIMEHeaderKey(k)] = []byte(v[0])
		s[strings.ToLower(k)] = []byte(v[0])
	}
	return s
}

func (h staticHeaders) PeekBytes(name []byte) []byte { return h[string(name)] }
