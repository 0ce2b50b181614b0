// Package prehmac computes HMAC-SHA256 and HMAC-SHA1 with keys prepared once.
// HMAC hashes the key block twice per message (xor ipad, xor opad); a Key
// keeps the hash chaining values after those blocks, so each MAC costs two
// compression runs fewer than crypto/hmac.New and allocates nothing. A Key
// does not contain the raw secret, but it is exactly as sensitive: whoever
// holds it computes any MAC under the secret. Never log one.
package prehmac

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
)

// Alg is a hash for HMAC.
type Alg uint8

const (
	SHA256 Alg = iota
	SHA1
)

func (a Alg) size() int {
	if a == SHA1 {
		return sha1.Size
	}
	return sha256.Size
}

// Key is a prepared HMAC key. The zero Key is not valid; use New.
type Key struct {
	alg          Alg
	inner, outer [sha256.Size]byte
}

// New prepares secret for HMAC with alg.
func New(alg Alg, secret []byte) Key {
	var m MAC
	return m.Prepare(alg, secret)
}

// Prepare is New with m's scratch space: once m has been used with alg, it
// allocates nothing. It leaves m ready for Begin or Sum.
func (m *MAC) Prepare(alg Alg, secret []byte) Key {
	h := m.hash(alg)
	// The key block goes to m.sum and each padded block to m.state (slices
	// of local arrays would escape through h.Write), by way of key: secret
	// may be a MAC that m returned, in m.sum.
	var key [blockSize]byte
	if len(secret) > blockSize {
		h.Reset()
		h.Write(secret)
		copy(key[:], h.Sum(m.sum[:0]))
	} else {
		copy(key[:], secret)
	}
	block := m.sum[:blockSize]
	copy(block, key[:])
	clear(key[:])
	k := Key{alg: alg}
	size := alg.size()
	for i, dst := range [2][]byte{k.inner[:size], k.outer[:size]} {
		pad := byte(0x36)
		if i == 1 {
			pad = 0x5c
		}
		padded := m.state[:blockSize]
		for j, b := range block {
			padded[j] = b ^ pad
		}
		h.Reset()
		h.Write(padded)
		copy(dst, m.marshal(h)[len(magicSHA256):]) // both magics are 4 bytes
	}
	clear(m.state[:])
	clear(m.sum[:])
	return k
}

// marshal returns h's state (see the constants below) in m's scratch.
func (m *MAC) marshal(h hash.Hash) []byte {
	var state []byte
	var err error
	if a, ok := h.(encoding.BinaryAppender); ok {
		state, err = a.AppendBinary(m.state[:0])
	} else {
		state, err = h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	if err != nil {
		panic("prehmac: hash state cannot be marshaled: " + err.Error())
	}
	return state
}

// The marshaled state of a crypto/sha256 or crypto/sha1 digest is
// magic || chaining values || block buffer || length (big endian), covered
// by the encoding.BinaryMarshaler compatibility promise.
const (
	magicSHA256 = "sha\x03"
	magicSHA1   = "sha\x01"
	blockSize   = 64 // both SHA-256 and SHA-1
)

// MAC is scratch space for computing MACs; reuse one per goroutine. The zero
// value is ready.
type MAC struct {
	sha256, sha1 hash.Hash
	state        [len(magicSHA256) + sha256.Size + blockSize + 8]byte
	sum          [2 * sha256.Size]byte
}

// Begin returns a hash resumed right after k's inner key block: write the
// message to it, then call End.
func (m *MAC) Begin(k *Key) hash.Hash {
	h := m.hash(k.alg)
	m.resume(h, k.alg, k.inner[:k.alg.size()])
	return h
}

// End finishes the MAC begun with Begin. The result is valid until the next
// call on m.
func (m *MAC) End(h hash.Hash, k *Key) []byte {
	size := k.alg.size()
	inner := h.Sum(m.sum[:0])
	m.resume(h, k.alg, k.outer[:size])
	h.Write(inner)
	return h.Sum(m.sum[:size])[size:]
}

// Sum is Begin, Write(msg), End.
func (m *MAC) Sum(k *Key, msg []byte) []byte {
	h := m.Begin(k)
	h.Write(msg)
	return m.End(h, k)
}

// Hash returns a plain SHA-256 hash from m's scratch, reset.
func (m *MAC) Hash() hash.Hash {
	h := m.hash(SHA256)
	h.Reset()
	return h
}

func (m *MAC) hash(alg Alg) hash.Hash {
	if alg == SHA1 {
		if m.sha1 == nil {
			m.sha1 = sha1.New()
		}
		return m.sha1
	}
	if m.sha256 == nil {
		m.sha256 = sha256.New()
	}
	return m.sha256
}

func (m *MAC) resume(h hash.Hash, alg Alg, chain []byte) {
	magic := magicSHA256
	if alg == SHA1 {
		magic = magicSHA1
	}
	b := append(m.state[:0], magic...)
	b = append(b, chain...)
	b = append(b, make([]byte, blockSize)...) // empty block buffer; constant size, no allocation
	b = binary.BigEndian.AppendUint64(b, blockSize)
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic("prehmac: hash state cannot be restored: " + err.Error())
	}
}
