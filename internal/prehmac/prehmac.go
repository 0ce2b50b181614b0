// Package prehmac computes HMAC-SHA256 and HMAC-SHA1 with keys prepared once.
// HMAC hashes the key block twice per message (xor ipad, xor opad); a Key
// keeps the hash chaining values after those blocks, so each MAC costs two
// compression runs fewer than crypto/hmac.New and allocates nothing. The
// raw key is not retained.
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
	h := newHash(alg)
	block := make([]byte, h.BlockSize())
	if len(secret) > len(block) {
		h.Write(secret)
		copy(block, h.Sum(nil))
	} else {
		copy(block, secret)
	}
	k := Key{alg: alg}
	for _, pad := range []struct {
		b   byte
		dst []byte
	}{{0x36, k.inner[:alg.size()]}, {0x5c, k.outer[:alg.size()]}} {
		padded := make([]byte, len(block))
		for i, b := range block {
			padded[i] = b ^ pad.b
		}
		h.Reset()
		h.Write(padded)
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic("prehmac: hash state cannot be marshaled: " + err.Error())
		}
		copy(pad.dst, state[len(magicSHA256):]) // both magics are 4 bytes
	}
	return k
}

func newHash(alg Alg) hash.Hash {
	if alg == SHA1 {
		return sha1.New()
	}
	return sha256.New()
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
