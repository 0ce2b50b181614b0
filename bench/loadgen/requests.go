package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// Request kinds, reported separately.
const (
	kindV2 = iota
	kindV4
	numKinds
)

var kindNames = [numKinds]string{"sigv2", "sigv4"}

// request is one complete HTTP/1.1 request, signed before the run starts.
type request struct {
	raw  []byte
	kind int
}

type credential struct{ access, secret string }

// loadCredentials reads "access<TAB>secret" lines (what bench/seed writes).
func loadCredentials(path string, limit int) ([]credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []credential
	sc := bufio.NewScanner(f)
	for sc.Scan() && (limit <= 0 || len(out) < limit) {
		access, secret, ok := strings.Cut(sc.Text(), "\t")
		if !ok || access == "" || secret == "" {
			return nil, fmt.Errorf("%s: line %d is not access<TAB>secret", path, len(out)+1)
		}
		out = append(out, credential{access, secret})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no credentials", path)
	}
	return out, nil
}

// signer builds the requests botocore (SigV4) and boto 2 (SigV2) send for
// a form-POST DescribeInstances: same action, same body size class. It is
// safe for concurrent use (fresh mode signs in every worker).
type signer struct {
	host            string // Host header, signed
	region, service string
	wrongSecret     bool // the invalid-signature flood
	// flood, for fresh requests with wrongSecret, are the templates their
	// made-up signatures go into (flood.go).
	flood []floodTemplate
	// keys are each access key's prepared signing keys (signingKeys):
	// fresh signing then costs the generator's core what a client's
	// would, not a key derivation per request.
	keys sync.Map
}

// signingKeys are a credential's keys for signing many requests.
type signingKeys struct {
	v2 *sigv2.Key
	v4 *sigv4.Secret
}

func (s *signer) keysFor(c credential) *signingKeys {
	if k, ok := s.keys.Load(c.access); ok {
		return k.(*signingKeys)
	}
	secret := []byte(s.secret(c))
	k, _ := s.keys.LoadOrStore(c.access, &signingKeys{v2: sigv2.NewKey(secret), v4: sigv4.NewSecret(secret)})
	return k.(*signingKeys)
}

const (
	action     = "DescribeInstances"
	apiVersion = "2016-11-15"
	formType   = "application/x-www-form-urlencoded; charset=utf-8"
	userAgent  = "ec2proxy-bench/1"
)

func (s *signer) secret(c credential) string {
	if s.wrongSecret {
		return c.secret + "-wrong"
	}
	return c.secret
}

// build signs one request at now. A non-empty nonce is sent as
// ClientToken (an EC2 idempotency parameter), so that every request, and
// its signature, is unique: what replay protection requires, and what a
// client with a wrong secret sending varied requests produces.
func (s *signer) build(c credential, kind int, now time.Time, nonce string) request {
	if kind == kindV4 {
		return request{raw: s.v4(c, now, nonce), kind: kindV4}
	}
	return request{raw: s.v2(c, now, nonce), kind: kindV2}
}

func (s *signer) v2(c credential, now time.Time, nonce string) []byte {
	params := []sigv2.Pair{
		{Name: "AWSAccessKeyId", Value: c.access},
		{Name: "Action", Value: action},
		{Name: "SignatureMethod", Value: "HmacSHA256"},
		{Name: "SignatureVersion", Value: "2"},
		{Name: "Timestamp", Value: now.UTC().Format("2006-01-02T15:04:05Z")},
		{Name: "Version", Value: apiVersion},
	}
	if nonce != "" {
		params = append(params, sigv2.Pair{Name: "ClientToken", Value: nonce})
	}
	sig := s.keysFor(c).v2.Sign(sigv2.HmacSHA256, sigv2.StringToSign("POST", s.host, "/", params))
	var body []byte
	for _, p := range append(params, sigv2.Pair{Name: "Signature", Value: sig}) {
		if len(body) > 0 {
			body = append(body, '&')
		}
		body = sigv2.AppendEscaped(append(sigv2.AppendEscaped(body, []byte(p.Name)), '='), []byte(p.Value))
	}
	return s.wire(body, nil)
}

func (s *signer) v4(c credential, now time.Time, nonce string) []byte {
	body := []byte("Action=" + action + "&Version=" + apiVersion)
	if nonce != "" {
		body = append(body, "&ClientToken="+nonce...)
	}
	auth, date, _ := sigv4.Sign(sigv4.Signing{
		Method: "POST", Host: s.host, Path: "/", ContentType: formType, Body: body,
		AccessKey: c.access, Key: s.keysFor(c).v4, Region: s.region, Service: s.service, Time: now,
	})
	return s.wire(body, []string{"X-Amz-Date: " + date, "Authorization: " + auth})
}

func (s *signer) wire(body []byte, extra []string) []byte {
	var b strings.Builder
	b.WriteString("POST / HTTP/1.1\r\nHost: " + s.host + "\r\nUser-Agent: " + userAgent +
		"\r\nContent-Type: " + formType + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return []byte(b.String())
}

// pool signs the requests of a run. Timed runs cycle over both kinds for
// every key (kinds alternate, so the mix is even whatever the number of
// keys); a once-pass sends one request per key, kinds alternating.
func (s *signer) pool(creds []credential, kinds []int, once bool) []request {
	var out []request
	now := time.Now()
	for i, c := range creds {
		if once {
			out = append(out, s.build(c, kinds[i%len(kinds)], now, ""))
			continue
		}
		for _, k := range kinds {
			out = append(out, s.build(c, k, now, ""))
		}
	}
	return out
}

// fresh signs request n of worker w at the current time, with a unique
// ClientToken; it cycles over keys and kinds like a pool would. It
// allocates (signing builds strings), which the pre-signed pool avoids.
func (s *signer) fresh(creds []credential, kinds []int, w, workers, n int) request {
	i := w*len(creds)*len(kinds)/workers + n
	if s.flood != nil { // invalid signatures: no signing (flood.go)
		return s.flood[i%len(s.flood)].fill(uint64(w)<<40 | uint64(n))
	}
	c := creds[(i/len(kinds))%len(creds)]
	return s.build(c, kinds[i%len(kinds)], time.Now(), "b"+strconv.Itoa(w)+"-"+strconv.Itoa(n))
}
