//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
)

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  string
		size int
		ok   bool
	}{
		{"head incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", 0, true},
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, true},
		{"body complete", "POST / HTTP/1.1\r\ncontent-LENGTH: 3\r\n\r\nabc", 41, true},
		{"body incomplete", "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", 0, true},
		{"pipelined: the first", "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", 19, true},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, false},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 0, false},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 0, false},
		{"too large", "POST / HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n", 0, false},
	} {
		size, ok := message([]byte(tc.buf))
		if size != tc.size || ok != tc.ok {
			t.Errorf("%s: message = %d, %v; want %d, %v", tc.name, size, ok, tc.size, tc.ok)
		}
	}
}

func TestRewriteDropsConnection(t *testing.T) {
	got := string(rewrite([]byte("GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\n\r\nxy"), nil))
	if want := "GET / HTTP/1.1\r\nHost: a\r\n\r\nxy"; got != want {
		t.Errorf("rewrite = %q, want %q", got, want)
	}
}

// signV2 is a form POST signed as boto 2 signs, at now.
func signV2(access, secret, host string, now time.Time) string {
	params := []sigv2.Pair{
		{Name: "AWSAccessKeyId", Value: access}, {Name: "Action", Value: "DescribeInstances"},
		{Name: "SignatureMethod", Value: "HmacSHA256"}, {Name: "SignatureVersion", Value: "2"},
		{Name: "Timestamp", Value: now.UTC().Format("2006-01-02T15:04:05Z")}, {Name: "Version", Value: "2016-11-15"},
	}
	form := url.Values{}
	for _, p := range params {
		form.Set(p.Name, p.Value)
	}
	form.Set("Signature", sigv2.NewKey([]byte(secret)).Sign(sigv2.HmacSHA256, sigv2.StringToSign("POST", host, "/", params)))
	body := form.Encode()
	return fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"+
		"X-Auth-Token: spoofed\r\nX-Roles: admin\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body)
}

func TestVerifierSigV2(t *testing.T) {
	v := newVerifier()
	v.add("AKIDEXAMPLE", "secret")
	now := time.Now()
	out, ok := v.verify([]byte(signV2("AKIDEXAMPLE", "secret", "ec2.example:8773", now)), nil)
	if !ok {
		t.Fatal("a correctly signed request was refused")
	}
	s := string(out)
	for _, want := range []string{"X-Identity-Status: Confirmed\r\n", "X-Roles: member,reader\r\n", "X-Request-Id: req-0000000000000001\r\n", "\r\n\r\nAWSAccessKeyId="} {
		if !strings.Contains(s, want) {
			t.Errorf("backend request lacks %q:\n%s", want, s)
		}
	}
	for _, spoofed := range []string{"spoofed", "X-Roles: admin"} {
		if strings.Contains(s, spoofed) {
			t.Errorf("backend request carries the client's %q", spoofed)
		}
	}
	for name, req := range map[string]string{
		"wrong secret":  signV2("AKIDEXAMPLE", "other", "ec2.example:8773", now),
		"unknown key":   signV2("AKIDOTHER", "secret", "ec2.example:8773", now),
		"old timestamp": signV2("AKIDEXAMPLE", "secret", "ec2.example:8773", now.Add(-time.Hour)),
		"other host":    strings.Replace(signV2("AKIDEXAMPLE", "secret", "ec2.example:8773", now), "Host: ec2.example:8773", "Host: ec2.example:8774", 1),
	} {
		if _, ok := v.verify([]byte(req), nil); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

type v4vector struct {
	Name, Method, Target, Body, Secret string
	Headers                            [][2]string
	AccessKey                          string `json:"access_key"`
	AmzDate                            string `json:"amz_date"`
	Valid                              bool
}

// TestVerifierSigV4 runs the SigV4 requests captured from real clients
// (sigv4/testdata) through the verifier at their own time.
func TestVerifierSigV4(t *testing.T) {
	data, err := os.ReadFile("../../sigv4/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []v4vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, vec := range vs {
		when, err := time.Parse("20060102T150405Z", vec.AmzDate)
		if err != nil {
			t.Fatalf("%s: amz_date %q", vec.Name, vec.AmzDate)
		}
		v := newVerifier()
		v.add(vec.AccessKey, vec.Secret)
		v.now = func() time.Time { return when }
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", vec.Method, vec.Target)
		for _, h := range vec.Headers {
			fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
		}
		b.WriteString("\r\n" + vec.Body)
		_, ok := v.verify([]byte(b.String()), nil)
		if ok != vec.Valid {
			t.Errorf("%s: verify = %v, want %v", vec.Name, ok, vec.Valid)
		}
		if vec.Valid {
			valid++
		}
	}
	if valid < 20 {
		t.Fatalf("only %d valid SigV4 vectors", valid)
	}
}

// startLoop serves on a loop of its own thread, for the test binary's life.
func startLoop(t *testing.T, backend string, v *verifier) string {
	l, err := newLoop("127.0.0.1:0", backend)
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		l.verify = v.verify
	}
	go func() {
		runtime.LockOSThread()
		_ = l.run()
	}()
	return l.addr()
}

// TestLoopRelays sends keep-alive, pipelined and refused requests through
// a real loop to a real backend.
func TestLoopRelays(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s roles=%q body=%d", r.Method, r.URL.Path, r.Header.Get("X-Roles"), len(body))
	}))
	defer backend.Close()
	host := strings.TrimPrefix(backend.URL, "http://")

	plain := startLoop(t, host, nil)
	c, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// Two requests in one write: the second waits for the first's answer.
	fmt.Fprint(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	for _, want := range []string{`GET /a roles="" body=0`, `POST /b roles="" body=4`} {
		expectAnswer(t, r, 200, want)
	}

	v := newVerifier()
	v.add("AKIDEXAMPLE", "secret")
	verifying := startLoop(t, host, v)
	c2, err := net.Dial("tcp", verifying)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	fmt.Fprint(c2, signV2("AKIDEXAMPLE", "secret", verifying, time.Now()))
	expectAnswer(t, r2, 200, `POST / roles="member,reader" body=`)
	fmt.Fprint(c2, signV2("AKIDEXAMPLE", "wrong", verifying, time.Now()))
	expectAnswer(t, r2, 403, "")
	fmt.Fprint(c2, signV2("AKIDEXAMPLE", "secret", verifying, time.Now())) // the connection lives on
	expectAnswer(t, r2, 200, `POST / roles="member,reader" body=`)
}

func expectAnswer(t *testing.T, r *bufio.Reader, status int, bodyPrefix string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status || !strings.HasPrefix(string(body), bodyPrefix) {
		t.Fatalf("answer %d %q, want %d %q...", resp.StatusCode, body, status, bodyPrefix)
	}
}
