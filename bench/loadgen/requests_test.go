package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// headers adapts net/http's header to sigv4.Headers.
type headers http.Header

func (h headers) PeekBytes(name []byte) []byte {
	if v := http.Header(h).Get(string(name)); v != "" {
		return []byte(v)
	}
	return nil
}

// verify checks a generated request with ec2proxy's own verifiers, as the
// proxy would see it.
func verify(t *testing.T, raw []byte, secret string, now time.Time) error {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("generated request does not parse: %v\n%s", err, raw)
	}
	body, _ := io.ReadAll(req.Body)
	if sigv4.IsSigV4([]byte(req.Header.Get("Authorization")), nil) {
		h := headers(req.Header)
		h["Host"] = []string{req.Host}
		var r sigv4.Request
		if err := r.Parse([]byte(req.Method), []byte(req.URL.Path), nil, body, true, h); err != nil {
			return err
		}
		return r.Verify(sigv4.NewSecret([]byte(secret)), now, sigv4.Limits{Regions: []string{"RegionOne"}, Services: []string{"ec2"}})
	}
	var r sigv2.Request
	if err := r.Parse([]byte(req.Method), []byte(req.Host), []byte(req.URL.Path), nil, body); err != nil {
		return err
	}
	return r.Verify(sigv2.NewKey([]byte(secret)), now, sigv2.Limits{DisableSHA1: true})
}

func TestGeneratedRequestsVerify(t *testing.T) {
	c := credential{access: "bench0123456789abcdef0123456789a", secret: "s3cr3t"}
	now := time.Now()
	for _, kind := range []int{kindV2, kindV4} {
		for _, nonce := range []string{"", "b1-42"} {
			good := (&signer{host: "127.0.0.1:8773", region: "RegionOne", service: "ec2"}).build(c, kind, now, nonce)
			if err := verify(t, good.raw, c.secret, now); err != nil {
				t.Errorf("%s nonce %q: %v", kindNames[kind], nonce, err)
			}
			bad := (&signer{host: "127.0.0.1:8773", region: "RegionOne", service: "ec2", wrongSecret: true}).build(c, kind, now, nonce)
			if err := verify(t, bad.raw, c.secret, now); err == nil {
				t.Errorf("%s nonce %q: a wrong-secret request verifies", kindNames[kind], nonce)
			}
		}
	}
}

func TestFreshRequestsAreUnique(t *testing.T) {
	s := &signer{host: "h", region: "RegionOne", service: "ec2"}
	creds := []credential{{"a1", "s1"}, {"a2", "s2"}}
	kinds := []int{kindV2, kindV4}
	seen := map[string]bool{}
	for w := range 2 {
		for n := range 10 {
			r := s.fresh(creds, kinds, w, 2, n)
			if seen[string(r.raw)] {
				t.Fatalf("worker %d request %d repeats an earlier one", w, n)
			}
			seen[string(r.raw)] = true
		}
	}
}
