package sigv2

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"hash"
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

// Key is a secret prepared for HMAC. HMAC hashes the key block twice per
// signature (once xor ipad, once xor opad); Key keeps the hash chaining values
// after those blocks, so verifying costs two compression runs fewer and no
// allocation. The raw secret is not retained.
type Key struct {
	sha256, sha1 chain
}

// chain holds the hash chaining values after the ipad and opad key blocks.
type chain struct{ inner, outer [sha256.Size]byte }

// NewKey prepares secret for signing and verifying.
func NewKey(secret []byte) *Key {
	k := new(Key)
	k.sha256 = newChain(sha256.New, sha256.Size, secret)
	k.sha1 = newChain(sha1.New, sha1.Size, secret)
	return k
}

func newChain(newHash func() hash.Hash, size int, secret []byte) chain {
	h := newHash()
	block := make([]byte, h.BlockSize())
	if len(secret) > len(block) {
		h.Write(secret)
		copy(block, h.Sum(nil))
		h.Reset()
	} else {
		copy(block, secret)
	}
	var c chain
	for _, pad := range []struct {
		b   byte
		dst []byte
	}{{0x36, c.inner[:size]}, {0x5c, c.outer[:size]}} {
		padded := make([]byte, len(block))
		for i, b := range block {
			padded[i] = b ^ pad.b
		}
		h.Reset()
		h.Write(padded)
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("sigv2: hash state cannot be marshaled: " + err.Error())
		}
		copy(pad.dst, state[len(magicSHA256):]) // both magics are 4 bytes
	}
	return c
}

// The marshaled state of a crypto/sha256 and crypto/sha1 digest is
// magic || chaining values || block buffer || length (big endian). The format
// is covered by the encoding.BinaryMarshaler compatibility promise.
const (
	magicSHA256 = "sha\x03"
	magicSHA1   = "sha\x01"
	blockSize   = 64 // both SHA-256 and SHA-1
)

// mac is per-request scratch for computing HMACs from a Key.
type mac struct {
	sha256, sha1 hash.Hash
	state        [len(magicSHA256) + sha256.Size + blockSize + 8]byte
	sum          [2 * sha256.Size]byte
}

// begin returns a hash resumed right after the inner key block: the caller
// writes the message, then calls end.
func (m *mac) begin(k *Key, method SignatureMethod) hash.Hash {
	h, c, magic, size := m.pick(k, method)
	m.resume(h, magic, c.inner[:size])
	return h
}

// end finishes the HMAC started by begin and returns the MAC, valid until the
// next call.
func (m *mac) end(h hash.Hash, k *Key, method SignatureMethod) []byte {
	_, c, magic, size := m.pick(k, method)
	inner := h.Sum(m.sum[:0])
	m.resume(h, magic, c.outer[:size])
	h.Write(inner)
	return h.Sum(m.sum[:size])[size:]
}

func (m *mac) pick(k *Key, method SignatureMethod) (hash.Hash, *chain, string, int) {
	if method == HmacSHA1 {
		if m.sha1 == nil {
			m.sha1 = sha1.New()
		}
		return m.sha1, &k.sha1, magicSHA1, sha1.Size
	}
	if m.sha256 == nil {
		m.sha256 = sha256.New()
	}
	return m.sha256, &k.sha256, magicSHA256, sha256.Size
}

func (m *mac) resume(h hash.Hash, magic string, chainValues []byte) {
	b := append(m.state[:0], magic...)
	b = append(b, chainValues...)
	b = append(b, make([]byte, blockSize)...) // empty block buffer; constant size, no allocation
	b = binary.BigEndian.AppendUint64(b, blockSize)
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic("sigv2: hash state cannot be restored: " + err.Error())
	}
}

// Sign returns the base64 signature of stringToSign, as a client sends it in
// the Signature parameter.
func (k *Key) Sign(method SignatureMethod, stringToSign []byte) string {
	var m mac
	h := m.begin(k, method)
	h.Write(stringToSign)
	return base64.StdEncoding.EncodeToString(m.end(h, k, method))
}
