//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/sigv4"
)

// cred is one access key's secret, prepared as ec2proxy's cache holds it,
// and the identity headers Keystone's answer would give it.
type cred struct {
	v2       sigv2.Key
	v4       sigv4.Secret
	identity []byte
}

// verifier does per request what ec2proxy's warm path does before the
// backend: parse, find the key, verify the signature and its time, drop the
// client's spoofable headers, add identity headers, a request ID and
// X-Forwarded-*. Left out (hence an estimate): metrics, access policy,
// lockout bookkeeping, the answer's X-Request-Id.
type verifier struct {
	creds map[string]*cred
	now   func() time.Time
	v2    sigv2.Request
	v4    sigv4.Request
	head  rawHeaders
	reqID uint64
}

var (
	limitsV2 = sigv2.Limits{TimestampWindow: 15 * time.Minute, MaxExpiresAhead: time.Hour}
	limitsV4 = sigv4.Limits{TimestampWindow: 15 * time.Minute}
)

// loadVerifier reads access<TAB>secret lines (bench/seed's creds.tsv).
func loadVerifier(path string) (*verifier, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v := newVerifier()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if access, secret, ok := strings.Cut(sc.Text(), "\t"); ok {
			v.add(access, secret)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(v.creds) == 0 {
		return nil, fmt.Errorf("%s: no access<TAB>secret lines", path)
	}
	return v, nil
}

func newVerifier() *verifier {
	return &verifier{creds: map[string]*cred{}, now: time.Now}
}

// add keeps a key with the identity headers of a typical Keystone answer
// (sizes as a real one's: a Fernet token, 32-hex IDs).
func (v *verifier) add(access, secret string) {
	c := &cred{}
	c.v2.Init([]byte(secret))
	c.v4.Init([]byte(secret))
	project, user := strings.Repeat("5b1f3c2d", 4), strings.Repeat("8a3e6a5f", 4)
	for _, h := range [][2]string{
		{"X-Identity-Status", "Confirmed"}, {"X-Auth-Token", "gAAAAAB" + strings.Repeat("n5Qz", 45)},
		{"X-User-Id", user}, {"X-User-Name", "bench-user"}, {"X-User-Domain-Id", "default"}, {"X-User-Domain-Name", "Default"},
		{"X-Project-Id", project}, {"X-Project-Name", "bench"}, {"X-Project-Domain-Id", "default"}, {"X-Project-Domain-Name", "Default"},
		{"X-Tenant-Id", project}, {"X-Tenant-Name", "bench"}, {"X-Roles", "member,reader"},
	} {
		c.identity = append(c.identity, h[0]+": "+h[1]+"\r\n"...)
	}
	v.creds[access] = c
}

// rawHeaders serves SigV4's header lookups from the raw request head.
type rawHeaders struct{ head []byte }

func (h *rawHeaders) PeekBytes(name []byte) []byte {
	for head := h.head; len(head) > 0; {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && bytes.EqualFold(line[:len(name)], name) {
			return bytes.TrimSpace(line[len(name)+1:])
		}
	}
	return nil
}

var (
	hdrAuthorization = []byte("Authorization")
	hdrHost          = []byte("Host")
	hdrContentType   = []byte("Content-Type")
	formType         = []byte("application/x-www-form-urlencoded")
	// dropped are the prefixes of the client headers not forwarded: the
	// connection's, and those carrying identity or forwarding context.
	dropped = [][]byte{[]byte("connection:"), []byte("x-auth-"), []byte("x-identity-"), []byte("x-user"),
		[]byte("x-project-"), []byte("x-tenant"), []byte("x-role"), []byte("x-forwarded-"), []byte("x-request-id")}
)

// verify appends to out the backend's request for msg, a complete request;
// false: it is refused.
func (v *verifier) verify(msg, out []byte) ([]byte, bool) {
	lineEnd := bytes.IndexByte(msg, '\n')
	headEnd := bytes.Index(msg, crlf2) + 2
	method, uri, ok := requestLine(msg[:lineEnd])
	if !ok {
		return out, false
	}
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i+1:]
	}
	v.head.head = msg[lineEnd+1 : headEnd]
	body := msg[headEnd+2:]
	isForm := bytes.HasPrefix(v.head.PeekBytes(hdrContentType), formType)
	var c *cred
	if sigv4.IsSigV4(v.head.PeekBytes(hdrAuthorization), query) {
		if v.v4.Parse(method, path, query, body, isForm, &v.head) != nil {
			return out, false
		}
		c = v.creds[string(v.v4.AccessKeyID())]
		if c == nil || v.v4.Verify(&c.v4, v.now(), limitsV4) != nil {
			return out, false
		}
	} else {
		if !isForm {
			body = nil
		}
		v.v2.Reset()
		if v.v2.Parse(method, v.head.PeekBytes(hdrHost), path, query, body) != nil {
			return out, false
		}
		c = v.creds[string(v.v2.AccessKeyID())]
		if c == nil || v.v2.Verify(&c.v2, v.now(), limitsV2) != nil {
			return out, false
		}
	}
	out = append(out, msg[:lineEnd+1]...)
	for head := v.head.head; len(head) > 0; {
		i := bytes.IndexByte(head, '\n')
		line := head[:i+1]
		head = head[i+1:]
		if !droppedHeader(line) {
			out = append(out, line...)
		}
	}
	out = append(out, c.identity...)
	v.reqID++
	out = append(out, "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: req-"...)
	out = appendHex(out, v.reqID)
	out = append(out, "\r\n\r\n"...)
	return append(out, msg[headEnd+2:]...), true
}

func requestLine(line []byte) (method, uri []byte, ok bool) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	uri, _, ok2 := bytes.Cut(rest, []byte{' '})
	return method, uri, ok1 && ok2 && len(uri) > 0
}

func droppedHeader(line []byte) bool {
	switch line[0] | 0x20 {
	case 'c', 'x':
		for _, p := range dropped {
			if hasPrefixFold(line, p) {
				return true
			}
		}
	}
	return false
}

func appendHex(b []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(n>>uint(shift))&15])
	}
	return b
}
