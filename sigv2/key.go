package sigv2

import (
	"encoding/base64"

	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// SignatureMethod is the HMAC a request was signed with.
type SignatureMethod uint8

const (
	HmacSHA256 SignatureMethod = iota + 1
	HmacSHA1
)

func (m SignatureMethod) String() string {
	switch m {
	case HmacSHA256:
		return "HmacSHA256"
	case HmacSHA1:
		return "HmacSHA1"
	}
	return "unknown"
}

// Key is a secret prepared for HMAC-SHA256 and HMAC-SHA1 (see
// internal/prehmac): verifying with it allocates nothing and skips the two
// key-block compressions. The raw secret is not retained.
type Key struct {
	sha256, sha1 prehmac.Key
}

// NewKey prepares secret for signing and verifying.
func NewKey(secret []byte) *Key {
	return &Key{sha256: prehmac.New(prehmac.SHA256, secret), sha1: prehmac.New(prehmac.SHA1, secret)}
}

func (k *Key) forMethod(m SignatureMethod) *prehmac.Key {
	if m == HmacSHA1 {
		return &k.sha1
	}
	return &k.sha256
}

// Sign returns the base64 signature of stringToSign, as a client sends it in
// the Signature parameter.
func (k *Key) Sign(method SignatureMethod, stringToSign []byte) string {
	var m prehmac.MAC
	return base64.StdEncoding.EncodeToString(m.Sum(k.forMethod(method), stringToSign))
}
