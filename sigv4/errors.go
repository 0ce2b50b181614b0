package sigv4

// Code classifies why a request was refused; the proxy maps codes to EC2
// errors.
type Code uint8

const (
	CodeIncompleteSignature   Code = iota + 1 // malformed or incomplete Authorization / X-Amz-* parameters
	CodeMissingParameter                      // Action or the date is missing
	CodeMalformedEncoding                     // bad percent-encoding or invalid UTF-8 in query or form body
	CodeDuplicateParameter                    // a parameter name appears twice
	CodeInvalidParameterValue                 // a value that cannot be used (X-Amz-Expires, payload hash)
	CodeScopeNotAllowed                       // region or service outside the operator's list
	CodeSignatureMismatch                     // the signature does not verify
	CodeExpired                               // X-Amz-Date too old, or a presigned URL past its expiry
	CodeNotYetValid                           // X-Amz-Date too far ahead
)

// Error is a refusal with a message safe to show to the client.
type Error struct {
	Code Code
	msg  string
}

// Message is the human-readable reason.
func (e *Error) Message() string { return e.msg }

func (e *Error) Error() string { return "sigv4: " + e.msg }

// errorf records the refusal in r, so error paths do not allocate an error
// value. The error is valid until r is parsed again or Reset.
func (r *Request) errorf(code Code, msg string) error {
	r.err = Error{Code: code, msg: msg}
	return &r.err
}
