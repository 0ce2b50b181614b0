package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"strings"
	"time"

	qs "github.com/ec2proxy/ec2proxy/internal/form"
	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// Signing is a request a client is about to send, for Sign and Presign
// (the load generator, `ec2proxy sign` and tests use them).
type Signing struct {
	Method, Host, Path string
	Query              string // raw, already encoded, without '?'
	ContentType        string // signed when set (botocore signs it for form POSTs)
	Body               []byte
	AccessKey, Secret  string
	// Key, when set, signs instead of Secret: its signing key is derived
	// once per date, region and service and kept, for a client that signs
	// many requests (the load generator signs each one as it sends it).
	Key             *Secret
	Region, Service string
	Time            time.Time
}

// Debug is what a signature was computed over.
type Debug struct {
	CanonicalRequest, StringToSign string
}

// Sign returns the Authorization and X-Amz-Date header values.
func Sign(s Signing) (authorization, amzDate string, debug Debug) {
	amzDate = s.Time.UTC().Format("20060102T150405Z")
	names := []string{"host", "x-amz-date"}
	values := map[string]string{"host": s.Host, "x-amz-date": amzDate}
	if s.ContentType != "" {
		names = append([]string{"content-type"}, names...)
		values["content-type"] = s.ContentType
	}
	sum := sha256.Sum256(s.Body)
	sig, debug := s.signature(canonicalQuery(s.Query, false), names, values, hex.EncodeToString(sum[:]), amzDate)
	return "AWS4-HMAC-SHA256 Credential=" + s.AccessKey + "/" + s.scope(amzDate) + ", SignedHeaders=" + strings.Join(names, ";") + ", Signature=" + sig, amzDate, debug
}

// Presign returns the query string of a presigned URL valid for expires
// (the given Query plus the X-Amz-* parameters).
func Presign(s Signing, expires time.Duration) (query string, debug Debug) {
	amzDate := s.Time.UTC().Format("20060102T150405Z")
	auth := "X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=" + string(qs.AppendEscaped(nil, []byte(s.AccessKey+"/"+s.scope(amzDate)))) +
		"&X-Amz-Date=" + amzDate +
		"&X-Amz-Expires=" + strconv.Itoa(int(expires/time.Second)) +
		"&X-Amz-SignedHeaders=host"
	full := auth
	if s.Query != "" {
		full = s.Query + "&" + auth
	}
	sum := sha256.Sum256(s.Body)
	sig, debug := s.signature(canonicalQuery(full, true), []string{"host"}, map[string]string{"host": s.Host}, hex.EncodeToString(sum[:]), amzDate)
	return full + "&X-Amz-Signature=" + sig, debug
}

func (s Signing) scope(amzDate string) string {
	return amzDate[:8] + "/" + s.Region + "/" + s.Service + "/aws4_request"
}

func (s Signing) signature(query string, names []string, values map[string]string, payload, amzDate string) (string, Debug) {
	var b strings.Builder
	path := s.Path
	if path == "" {
		path = "/"
	}
	b.WriteString(s.Method + "\n" + path + "\n" + query + "\n")
	for _, n := range names {
		b.WriteString(n + ":" + strings.Join(strings.Fields(values[n]), " ") + "\n")
	}
	b.WriteString("\n" + strings.Join(names, ";") + "\n" + payload)
	creq := b.String()
	h := sha256.Sum256([]byte(creq))
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + s.scope(amzDate) + "\n" + hex.EncodeToString(h[:])
	debug := Debug{CanonicalRequest: creq, StringToSign: sts}
	if s.Key != nil {
		var m prehmac.MAC
		key := s.Key.signingKey([]byte(amzDate[:8]), []byte(s.Region), []byte(s.Service), &m)
		return hex.EncodeToString(m.Sum(key, []byte(sts))), debug
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+s.Secret), amzDate[:8]), s.Region), s.Service), "aws4_request")
	return hex.EncodeToString(mac(key, sts)), debug
}

// canonicalQuery re-encodes a raw query and sorts it by encoded name, then
// value; a presigned URL's X-Amz-Signature is left out.
func canonicalQuery(raw string, presigned bool) string {
	var p qs.Params
	p.Parse([]byte(raw))
	pairs := make([]string, 0, p.Len())
	for i := 0; i < p.Len(); i++ {
		if presigned && string(p.Name(i)) == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, string(qs.AppendEscaped(nil, p.Name(i)))+"="+string(qs.AppendEscaped(nil, p.Value(i))))
	}
	sort.Slice(pairs, func(i, j int) bool {
		ni, vi, _ := strings.Cut(pairs[i], "=")
		nj, vj, _ := strings.Cut(pairs[j], "=")
		if ni != nj {
			return ni < nj
		}
		return vi < vj
	})
	return strings.Join(pairs, "&")
}
