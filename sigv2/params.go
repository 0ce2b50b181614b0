package sigv2

import (
	"strconv"
	"unicode/utf8"

	qs "github.com/ec2proxy/ec2proxy/internal/form"
)

// MaxParams bounds the number of parameters in one request.
const MaxParams = qs.MaxParams

// parseParams decodes a raw query string or form body into r.params.
func (r *Request) parseParams(raw []byte) error {
	problem, name := r.params.Parse(raw)
	switch problem {
	case qs.OK:
		return nil
	case qs.BadNameEncoding:
		return r.errorf(CodeMalformedEncoding, "", "invalid percent-encoding in a parameter name")
	case qs.EmptyName:
		return r.errorf(CodeMalformedEncoding, "", "a parameter has an empty name")
	case qs.NameNotUTF8:
		return r.errorf(CodeMalformedEncoding, "", "a parameter name is not valid UTF-8")
	case qs.BadValueEncoding:
		n := shownName(name)
		return r.errorf(CodeMalformedEncoding, n, "invalid percent-encoding in the value of parameter "+n)
	case qs.ValueNotUTF8:
		n := shownName(name)
		return r.errorf(CodeMalformedEncoding, n, "the value of parameter "+n+" is not valid UTF-8")
	case qs.RawSemicolon:
		if name == nil {
			return r.errorf(CodeMalformedEncoding, "", "a parameter name contains ';': percent-encode it as %3B")
		}
		n := shownName(name)
		return r.errorf(CodeMalformedEncoding, n, "the value of parameter "+n+" contains ';': percent-encode it as %3B")
	default:
		return r.errorf(CodeMalformedEncoding, "", "the request has more than "+strconv.Itoa(MaxParams)+" parameters")
	}
}

// sortAndCheckDuplicates puts the parameters in byte order of their decoded
// names, as the canonical query requires, and refuses a name given twice.
func (r *Request) sortAndCheckDuplicates() error {
	r.params.SortByName()
	if dup := r.params.Duplicate(); dup != nil {
		name := shownName(dup)
		return r.errorf(CodeDuplicateParameter, name, "parameter "+name+" is given more than once; each parameter may appear only once")
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

// AppendEscaped appends s RFC 3986-encoded (space as %20, '~' kept).
func AppendEscaped(dst []byte, s []byte) []byte { return qs.AppendEscaped(dst, s) }
