package proxy

import (
	"net/http"
	"unicode/utf8"
)

// errorCode names one row of the error table. Stages return codes; only
// Server.fail turns a code into a response, a log line and a metric.
type errorCode uint8

const (
	errNone errorCode = iota
	errAuthFailure
	errSignatureDoesNotMatch
	errIncompleteSignature
	errRequestExpired
	errMissingParameter
	errInvalidParameterValue
	errInvalidParameterCombination
	errMalformedQueryString
	errUnsupportedSignature
	errInvalidRequest
	errMethodNotAllowed
	errNoRoute
	errRequestEntityTooLarge
	errHeadersTooLarge
	errRequestTimeout
	errServiceUnavailable
	errInternalError
	errBadGateway
	errGatewayTimeout
	errLockedOut
	errClientLockedOut
	errRequestLimitExceeded
	errReplayed
	errHostNotServed
	errUnauthorizedOperation
	numErrorCodes
)

// ec2Error is what a client sees: the EC2 error code, the HTTP status, and a
// default message used when the stage has nothing more specific to say.
type ec2Error struct {
	code    string
	status  int
	message string
}

// errorTable is the one place that maps failures to EC2 errors.
var errorTable = [numErrorCodes]ec2Error{
	errAuthFailure:                 {"AuthFailure", http.StatusUnauthorized, "AWS was not able to validate the provided access credentials: the access key is unknown or disabled."},
	errSignatureDoesNotMatch:       {"SignatureDoesNotMatch", http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your secret key, the endpoint URL (host, port and path) and the signing method."},
	errIncompleteSignature:         {"IncompleteSignature", http.StatusBadRequest, "The request signature does not conform to AWS standards."},
	errRequestExpired:              {"RequestExpired", http.StatusBadRequest, "The request has expired or is not yet valid; check the client clock."},
	errMissingParameter:            {"MissingParameter", http.StatusBadRequest, "A required parameter is missing."},
	errInvalidParameterValue:       {"InvalidParameterValue", http.StatusBadRequest, "A parameter value is not valid."},
	errInvalidParameterCombination: {"InvalidParameterCombination", http.StatusBadRequest, "Parameters that cannot be used together were given."},
	errMalformedQueryString:        {"MalformedQueryString", http.StatusBadRequest, "The query string or form body is malformed."},
	errUnsupportedSignature:        {"InvalidParameterValue", http.StatusBadRequest, "This signature version or method is not accepted: sign with SignatureVersion 2 (HmacSHA256) or Signature Version 4."},
	errInvalidRequest:              {"InvalidRequest", http.StatusBadRequest, "The request is not a valid EC2 Query API request."},
	errMethodNotAllowed:            {"InvalidRequest", http.StatusMethodNotAllowed, "Only GET and POST are accepted."},
	errNoRoute:                     {"InvalidRequest", http.StatusNotFound, "No EC2 endpoint is served at this path."},
	errRequestEntityTooLarge:       {"RequestEntityTooLarge", http.StatusRequestEntityTooLarge, "The request body is larger than this endpoint accepts."},
	errHeadersTooLarge:             {"InvalidRequest", http.StatusRequestHeaderFieldsTooLarge, "The request headers are larger than this endpoint accepts."},
	errRequestTimeout:              {"RequestTimeout", http.StatusRequestTimeout, "The request was not received in time."},
	errServiceUnavailable:          {"ServiceUnavailable", http.StatusServiceUnavailable, "The service is unavailable. Please try again shortly."},
	errInternalError:               {"InternalError", http.StatusInternalServerError, "An internal error has occurred."},
	errBadGateway:                  {"BadGateway", http.StatusBadGateway, "The compute backend could not be reached or gave no valid answer."},
	errGatewayTimeout:              {"GatewayTimeout", http.StatusGatewayTimeout, "The compute backend did not answer in time."},
	errLockedOut:                   {"AuthFailure", http.StatusForbidden, "This access key is locked after too many failed signatures."},
	errClientLockedOut:             {"AuthFailure", http.StatusForbidden, "Too many requests with unknown access keys came from this address; it is locked for a while."},
	errRequestLimitExceeded:        {"RequestLimitExceeded", http.StatusServiceUnavailable, "Request limit exceeded for this access key; retry with back-off."},
	errReplayed:                    {"RequestExpired", http.StatusBadRequest, "This signed request was already used: sign every request afresh (replay protection is on)."},
	errHostNotServed:               {"InvalidRequest", http.StatusBadRequest, "This endpoint does not serve the host named in the Host header."},
	errUnauthorizedOperation:       {"UnauthorizedOperation", http.StatusForbidden, "You are not authorized to perform this operation."},
}

// appendErrorXML appends the EC2 error document (as nova wrote it).
func appendErrorXML(dst []byte, e ec2Error, message string, requestID []byte) []byte {
	dst = append(dst, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>`...)
	dst = append(dst, e.code...)
	dst = append(dst, "</Code><Message>"...)
	dst = appendEscapedXML(dst, message)
	dst = append(dst, "</Message></Error></Errors><RequestID>"...)
	dst = append(dst, requestID...)
	return append(dst, "</RequestID></Response>"...)
}

// appendEscapedXML escapes text for an XML element. Newlines and quotes stay
// readable (the string to sign has newlines); bytes XML cannot carry become
// U+FFFD.
func appendEscapedXML(dst []byte, s string) []byte {
	for _, r := range s {
		switch {
		case r == '&':
			dst = append(dst, "&amp;"...)
		case r == '<':
			dst = append(dst, "&lt;"...)
		case r == '>':
			dst = append(dst, "&gt;"...)
		case r == '\n' || r == '\t' || r >= 0x20 && r != utf8.RuneError && r != 0xFFFE && r != 0xFFFF:
			dst = utf8.AppendRune(dst, r)
		default:
			dst = append(dst, "\uFFFD"...)
		}
	}
	return dst
}
