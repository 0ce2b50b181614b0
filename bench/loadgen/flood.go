package main

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// A flood of distinct invalid signatures needs no HMAC: an attacker sends
// made-up signatures, and ec2proxy's work (verify, compare, count) is the
// same whatever they are. Signing each request with a wrong secret kept
// the generator's core at 100% at about the proxy's valid rate, so the
// flood measured the generator. Each key and kind gets one template, built
// when the run starts with fixed-width slots for a ClientToken and the
// signature, which every request fills from its own number.

// floodTemplate is one request with the offsets of its two slots.
type floodTemplate struct {
	raw         []byte
	kind        int
	nonce, sig  int // offsets of the slots in raw
	sigLen      int
	sigAlphabet string
}

const (
	floodNonceDigits = 16
	hexDigits        = "0123456789abcdef"
	alnumDigits      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// floodTemplates builds a template for every key and kind, dated now.
func (s *signer) floodTemplates(creds []credential, kinds []int, now time.Time) []floodTemplate {
	nonce := strings.Repeat("N", floodNonceDigits)
	out := make([]floodTemplate, 0, len(creds)*len(kinds))
	for _, c := range creds {
		for _, k := range kinds {
			// Sign normally with placeholders in both slots; then the
			// signature's text is found and replaced by a placeholder.
			r := s.build(c, k, now, nonce)
			t := floodTemplate{raw: r.raw, kind: k}
			t.nonce = bytes.Index(t.raw, []byte(nonce))
			if k == kindV4 {
				t.sigAlphabet, t.sigLen = hexDigits, 64
				t.sig = bytes.Index(t.raw, []byte("Signature=")) + len("Signature=")
			} else {
				// 43 letters and digits then '=' (sent as %3D): a 32-byte
				// MAC's base64 with nothing to escape, so the slot has a
				// fixed width.
				t.sigAlphabet, t.sigLen = alnumDigits, 43
				t.sig = bytes.LastIndex(t.raw, []byte("&Signature=")) + len("&Signature=")
				end := bytes.IndexByte(t.raw[t.sig:], '&')
				if end < 0 {
					end = len(t.raw) - t.sig
				}
				raw := append([]byte(nil), t.raw[:t.sig]...)
				raw = append(raw, strings.Repeat("A", 43)+"%3D"...)
				t.raw = fixLength(append(raw, t.raw[t.sig+end:]...))
			}
			out = append(out, t)
		}
	}
	return out
}

// fixLength rewrites Content-Length after the body changed size.
func fixLength(raw []byte) []byte {
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "Content-Length: ") {
			lines[i] = "Content-Length: " + strconv.Itoa(len(body))
		}
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n" + string(body))
}

// fill returns a copy of t with request number id in both slots: the
// ClientToken is id in hex, the signature id in the slot's alphabet, padded
// with its first letter, so distinct ids give distinct signatures.
func (t *floodTemplate) fill(id uint64) request {
	raw := append([]byte(nil), t.raw...)
	for i := floodNonceDigits - 1; i >= 0; i-- {
		raw[t.nonce+i] = hexDigits[id>>(4*uint(floodNonceDigits-1-i))&15]
	}
	base := uint64(len(t.sigAlphabet))
	for i, v := 0, id; i < t.sigLen; i, v = i+1, v/base {
		raw[t.sig+i] = t.sigAlphabet[v%base]
	}
	return request{raw: raw, kind: t.kind}
}
