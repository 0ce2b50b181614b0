package sigv2

import (
	"bytes"
	"encoding/base64"
	"sync/atomic"

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

// Key is a secret access key for signing and verifying. Each HMAC is
// prepared (see internal/prehmac) the first time a request signed with it
// is verified, and kept: verifying with a prepared key allocates nothing and
// skips the two key-block compressions. Until then only the raw secret is
// held (most clients sign with HmacSHA256 only, many with SigV4 only, and
// 100,000 cached keys make every byte count).
//
// A Key holds the secret, and its prepared states are exactly as sensitive
// (whoever has one computes any MAC under the secret): never log, print or
// marshal a Key. The secret is a []byte the Key owns, not a string, so that
// it is not copied or interned behind the Key's back. Safe for concurrent
// use.
type Key struct {
	secret []byte
	macs   atomic.Pointer[macKeys] // nil until the first verification
}

// macKeys are a Key's prepared HMACs: HMAC-SHA256, and HMAC-SHA1 once a
// request signed with it is verified.
type macKeys struct {
	sha256 prehmac.Key
	sha1   atomic.Pointer[prehmac.Key]
}

// NewKey returns a key for a copy of secret.
func NewKey(secret []byte) *Key {
	k := new(Key)
	k.Init(bytes.Clone(secret))
	return k
}

// Init makes k, before any use, a key for secret, which k keeps without
// copying: the caller must not change secret afterwards. It is for a Key
// inside a larger value, possibly sharing one copy of the secret with a
// sigv4.Secret (as the proxy's credential cache does).
func (k *Key) Init(secret []byte) {
	k.secret = secret
	k.macs.Store(nil)
}

// forMethod returns the prepared HMAC for m, preparing it on first use.
// The common case is small enough to inline.
func (k *Key) forMethod(m SignatureMethod) *prehmac.Key {
	if p := k.macs.Load(); p != nil && m != HmacSHA1 {
		return &p.sha256
	}
	return k.forMethodSlow(m)
}

func (k *Key) forMethodSlow(m SignatureMethod) *prehmac.Key {
	p := k.macs.Load()
	if p == nil {
		p = k.prepare()
	}
	if m == HmacSHA1 {
		if s := p.sha1.Load(); s != nil {
			return s
		}
		return k.prepareSHA1(p)
	}
	return &p.sha256
}

// prepare prepares HMAC-SHA256. Concurrent first uses may both compute it;
// one result is kept.
func (k *Key) prepare() *macKeys {
	p := &macKeys{sha256: prehmac.New(prehmac.SHA256, k.secret)}
	if !k.macs.CompareAndSwap(nil, p) {
		return k.macs.Load()
	}
	return p
}

func (k *Key) prepareSHA1(p *macKeys) *prehmac.Key {
	s := new(prehmac.Key)
	*s = prehmac.New(prehmac.SHA1, k.secret)
	if !p.sha1.CompareAndSwap(nil, s) {
		return p.sha1.Load()
	}
	return s
}

// Sign returns the base64 signature of stringToSign, as a client sends it in
// the Signature parameter. It uses the prepared HMAC if a verification
// prepared it, and does not prepare one otherwise: ec2proxy signs once per
// Keystone token (its ec2tokens call), which is no reason to keep an
// HMAC-SHA256 state for a client that only ever uses SigV4.
func (k *Key) Sign(method SignatureMethod, stringToSign []byte) string {
	var m prehmac.MAC
	var pk *prehmac.Key
	if p := k.macs.Load(); p != nil {
		if method == HmacSHA1 {
			pk = p.sha1.Load()
		} else {
			pk = &p.sha256
		}
	}
	if pk == nil {
		alg := prehmac.SHA256
		if method == HmacSHA1 {
			alg = prehmac.SHA1
		}
		once := m.Prepare(alg, k.secret)
		pk = &once
	}
	return base64.StdEncoding.EncodeToString(m.Sum(pk, stringToSign))
}
