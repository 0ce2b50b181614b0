package main

import (
	"errors"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// Flood requests are well formed and fail only on their signature, and no
// two carry the same signature (lockout counts distinct ones).
func TestFloodRequests(t *testing.T) {
	now := time.Now()
	creds := []credential{{"bench0123456789abcdef0123456789a", "s1"}, {"bench0123456789abcdef0123456789b", "s2"}}
	s := &signer{host: "127.0.0.1:8773", region: "RegionOne", service: "ec2", wrongSecret: true}
	s.flood = s.floodTemplates(creds, []int{kindV2, kindV4}, now)
	sigs := map[string]bool{}
	for w := range 3 {
		for n := range 200 {
			r := s.fresh(creds, []int{kindV2, kindV4}, w, 3, n)
			err := verify(t, r.raw, creds[0].secret, now)
			if err == nil {
				err = verify(t, r.raw, creds[1].secret, now)
			}
			var e2 *sigv2.Error
			var e4 *sigv4.Error
			switch {
			case errors.As(err, &e2) && e2.Code == sigv2.CodeSignatureMismatch:
			case errors.As(err, &e4) && e4.Code == sigv4.CodeSignatureMismatch:
			default:
				t.Fatalf("worker %d request %d: %v; want a signature mismatch\n%s", w, n, err, r.raw)
			}
			sig := signatureOf(t, r.raw)
			if sigs[sig] {
				t.Fatalf("worker %d request %d repeats signature %s", w, n, sig)
			}
			sigs[sig] = true
		}
	}
}

func signatureOf(t *testing.T, raw []byte) string {
	t.Helper()
	for _, marker := range []string{"Signature=", "&Signature="} {
		if i := lastIndex(raw, marker); i >= 0 {
			rest := raw[i+len(marker):]
			end := 0
			for end < len(rest) && rest[end] != '&' && rest[end] != '\r' && rest[end] != ',' {
				end++
			}
			return string(rest[:end])
		}
	}
	t.Fatalf("no signature in %s", raw)
	return ""
}

func lastIndex(b []byte, s string) int {
	for i := len(b) - len(s); i >= 0; i-- {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}
