package sigv2

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// param locates one decoded name=value pair inside Request.buf. Offsets, not
// slices, so that growing buf never leaves a stale reference behind.
type param struct {
	nameStart, nameEnd, valueStart, valueEnd uint32
}

// parseParams decodes an application/x-www-form-urlencoded string (a raw
// query string or a POST body) and appends its pairs to r. Pairs are split on
// '&' only: ';' is data, not a separator (Go's url.ParseQuery drops such
// pairs, which would change what is signed). '+' decodes to a space, as in
// every form encoder; clients sign the space as %20.
func (r *Request) parseParams(raw []byte) error {
	for len(raw) > 0 {
		var pair []byte
		if i := bytes.IndexByte(raw, '&'); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, nil
		}
		if len(pair) == 0 {
			continue
		}
		name, value := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name, value = pair[:i], pair[i+1:]
		}
		var p param
		var ok bool
		p.nameStart = uint32(len(r.buf))
		if r.buf, ok = appendUnescaped(r.buf, name); !ok {
			return r.errorf(CodeMalformedEncoding, "", "invalid percent-encoding in a parameter name")
		}
		p.nameEnd = uint32(len(r.buf))
		if p.nameStart == p.nameEnd {
			return r.errorf(CodeMalformedEncoding, "", "a parameter has an empty name")
		}
		if !utf8.Valid(r.buf[p.nameStart:p.nameEnd]) {
			return r.errorf(CodeMalformedEncoding, "", "a parameter name is not valid UTF-8")
		}
		p.valueStart = p.nameEnd
		if r.buf, ok = appendUnescaped(r.buf, value); !ok {
			name := shownName(r.buf[p.nameStart:p.nameEnd])
			return r.errorf(CodeMalformedEncoding, name, "invalid percent-encoding in the value of parameter "+name)
		}
		p.valueEnd = uint32(len(r.buf))
		if !utf8.Valid(r.buf[p.valueStart:p.valueEnd]) {
			name := shownName(r.buf[p.nameStart:p.nameEnd])
			return r.errorf(CodeMalformedEncoding, name, "the value of parameter "+name+" is not valid UTF-8")
		}
		if len(r.params) >= MaxParams {
			return r.errorf(CodeMalformedEncoding, "", "too many parameters")
		}
		r.params = append(r.params, p)
	}
	return nil
}

// MaxParams bounds the number of parameters in one request; EC2 calls with
// many filters stay far below it.
const MaxParams = 1000

// sortAndCheckDuplicates puts the parameters in byte order of their decoded
// names, as the canonical query requires, and refuses a name given twice:
// verifiers that keep the last value (Keystone, webob) let an unsigned
// duplicate such as a second Action reach the backend.
func (r *Request) sortAndCheckDuplicates() error {
	buf := r.buf
	slices.SortFunc(r.params, func(a, b param) int {
		return bytes.Compare(buf[a.nameStart:a.nameEnd], buf[b.nameStart:b.nameEnd])
	})
	for i := 1; i < len(r.params); i++ {
		if bytes.Equal(r.name(r.params[i-1]), r.name(r.params[i])) {
			name := shownName(r.name(r.params[i]))
			return r.errorf(CodeDuplicateParameter, name, "parameter "+name+" is given more than once; each parameter may appear only once")
		}
	}
	return nil
}

// shownName is a parameter name fit for an error message: client-chosen,
// so bounded in length (it is valid UTF-8 by the time it is shown).
func shownName(b []byte) string {
	const max = 64
	if len(b) <= max {
		return string(b)
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return string(b[:i]) + "..."
		}
	}
	return "..."
}

func (r *Request) name(p param) []byte  { return r.buf[p.nameStart:p.nameEnd] }
func (r *Request) value(p param) []byte { return r.buf[p.valueStart:p.valueEnd] }

// appendUnescaped appends the form-decoded s to dst. It reports false for a
// '%' not followed by two hex digits.
func appendUnescaped(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(s) {
				return dst, false
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return dst, false
			}
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// AppendEscaped appends s percent-encoded as RFC 3986 requires for the
// canonical query: only A-Z a-z 0-9 - _ . ~ stay as they are, everything else
// becomes %XX with upper-case hex (a space is %20, never '+').
func AppendEscaped(dst []byte, s []byte) []byte {
	const hexUpper = "0123456789ABCDEF"
	for _, c := range s {
		if isUnreserved(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hexUpper[c>>4], hexUpper[c&15])
	}
	return dst
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
