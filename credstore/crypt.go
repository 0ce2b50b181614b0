package credstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Keyring encrypts secrets at rest with AES-256-GCM. The current key
// encrypts; older keys still decrypt, so keys rotate without downtime:
// add the new key as current, keep the old one in the ring, run
// `ec2proxy creds reencrypt`, then drop the old key.
//
// A stored secret is "v1:<key id>:<base64(nonce || ciphertext)>", the key id
// being the first 8 hex digits of SHA-256(key), and the access key is the
// additional data, so a ciphertext cannot be moved to another record.
type Keyring struct {
	current string // key id
	aeads   map[string]cipher.AEAD
}

// ErrNoKey marks a secret encrypted with a key this process does not hold
// (a key rotated in before every replica had it, or no key configured).
// The record is sound; this replica is misconfigured: not ErrCorrupt, which
// refuses the client and is cached as an answer.
var ErrNoKey = errors.New("credstore: secret encrypted with a key not in this process's keyring")

// LoadKeyring reads key files: the first is the current key, the rest only
// decrypt. A key file holds 32 random bytes as 64 hex digits (whitespace
// around them is ignored); create one with `ec2proxy creds genkey`.
func LoadKeyring(current string, older ...string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, path := range append([]string{current}, older...) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("credstore: encryption key: %w", err)
		}
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("credstore: encryption key %s: want 64 hex digits (32 bytes), as `ec2proxy creds genkey` writes", path)
		}
		id, aead, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			k.current = id
		}
		k.aeads[id] = aead
	}
	return k, nil
}

func newAEAD(key []byte) (string, cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", nil, fmt.Errorf("credstore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", nil, fmt.Errorf("credstore: %w", err)
	}
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4]), aead, nil
}

// GenerateKey returns a new key file's content.
func GenerateKey() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return hex.EncodeToString(key) + "\n"
}

// Encrypt seals secret for the record of accessKey with the current key.
func (k *Keyring) Encrypt(accessKey, secret string) string {
	return k.seal(accessKey, []byte(secret))
}

// seal encrypts plain with the current key; aad binds the result to where
// it is stored, so a sealed value cannot be moved to another record.
func (k *Keyring) seal(aad string, plain []byte) string {
	var scratch []byte
	return string(k.appendSealed(nil, &scratch, aad, plain))
}

// appendSealed appends seal's result to dst, with *scratch (kept for
// reuse) holding the ciphertext on the way: a token shared on every cold
// request costs no garbage but this.
func (k *Keyring) appendSealed(dst []byte, scratch *[]byte, aad string, plain []byte) []byte {
	aead := k.aeads[k.current]
	nonce := slices.Grow((*scratch)[:0], aead.NonceSize()+len(plain)+aead.Overhead())[:aead.NonceSize()]
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, plain, []byte(aad))
	*scratch = sealed
	dst = append(dst, "v1:"...)
	dst = append(dst, k.current...)
	dst = append(dst, ':')
	return base64.StdEncoding.AppendEncode(dst, sealed)
}

// Decrypt opens a sealed secret; current reports whether it was sealed with
// the current key (reencrypt rewrites the others).
func (k *Keyring) Decrypt(accessKey, sealed string) (secret string, current bool, err error) {
	plain, keyID, err := k.open(accessKey, sealed)
	if err != nil {
		return "", false, fmt.Errorf("secret_enc of %s: %w", accessKey, err)
	}
	return string(plain), keyID == k.current, nil
}

// open reverses seal; aad must be what the value was sealed for.
func (k *Keyring) open(aad, sealed string) (plain []byte, keyID string, err error) {
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return nil, "", fmt.Errorf("%w: not v1:<key id>:<data>", ErrCorrupt)
	}
	aead, ok := k.aeads[parts[1]]
	if !ok {
		return nil, "", fmt.Errorf("%w (key id %s)", ErrNoKey, parts[1])
	}
	data, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(data) < aead.NonceSize() {
		return nil, "", fmt.Errorf("%w: not valid base64", ErrCorrupt)
	}
	plain, err = aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, "", fmt.Errorf("%w: does not decrypt (wrong key, or moved from another record)", ErrCorrupt)
	}
	return plain, parts[1], nil
}
