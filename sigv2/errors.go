package sigv2

// Code classifies why a request was refused. The proxy maps each code to an
// EC2 error; this package only says what is wrong.
type Code uint8

const (
	CodeMissingParameter            Code = iota + 1 // a required parameter is absent
	CodeMalformedEncoding                           // bad percent-encoding, invalid UTF-8, too many parameters
	CodeDuplicateParameter                          // a parameter name appears twice
	CodeInvalidParameterValue                       // a value that cannot be parsed (Timestamp, SignatureVersion, ...)
	CodeParameterCombination                        // Timestamp and Expires together
	CodeUnsupportedSignatureVersion                 // SignatureVersion 0 or 1
	CodeUnsupportedSignatureMethod                  // SignatureMethod other than HmacSHA256/HmacSHA1, or SHA1 disabled
	CodeMalformedSignature                          // Signature is not base64 of a plausible length
	CodeSignatureMismatch                           // the signature does not verify for any host candidate
	CodeExpired                                     // Timestamp too old, or Expires has passed
	CodeNotYetValid                                 // Timestamp too far ahead, or Expires too far in the future
)

// Error is a refusal with a message that is safe to show to the client: it
// names parameters, never their secret-bearing values.
type Error struct {
	Code  Code
	Param string // the parameter concerned, or ""
	msg   string
}

// Message is the human-readable reason.
func (e *Error) Message() string { return e.msg }

func (e *Error) Error() string { return "sigv2: " + e.Message() }

// errorf records the refusal in r so that error paths, which attackers can
// drive at line rate, do not allocate an error value.
func (r *Request) errorf(code Code, param, msg string) error {
	r.err = Error{Code: code, Param: param, msg: msg}
	return &r.err
}
