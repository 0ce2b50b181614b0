package proxy

import "math/rand/v2"

// appendRequestID appends an OpenStack-style request id, req-<uuid4>. It
// identifies a request in logs; it is not a secret, so a fast generator does.
func appendRequestID(dst []byte) []byte {
	const hexDigits = "0123456789abcdef"
	var u [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	dst = append(dst, "req-"...)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}
