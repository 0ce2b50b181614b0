//go:build linux

package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// A connection whose TLS handshake fails carries no request: it is neither
// counted nor logged as a rejected EC2 request (a review: a client that
// refused the certificate, or spoke plain HTTP on the TLS port, each
// counted InvalidRequest and wrote an info line).
func TestFailedTLSHandshakeIsNoRequest(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"ec2.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := warmServer(t, startScriptedBackend(t, answerWith("<ok/>")).addr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, //nolint:errcheck
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}))
	t.Cleanup(func() { ln.Close() })

	for _, try := range []func(net.Conn){
		func(c net.Conn) { _ = tls.Client(c, &tls.Config{ServerName: "ec2.example.com"}).Handshake() }, // refuses the self-signed certificate
		func(c net.Conn) { // plain HTTP on the TLS port
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			io.ReadAll(c)
		},
	} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		try(c)
		c.Close()
	}
	// A request over a good handshake is still answered (and counted).
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(tc)
	if !strings.HasPrefix(string(answer), "HTTP/1.1 400") || !strings.Contains(string(answer), "<Code>MissingParameter</Code>") {
		t.Errorf("over TLS: %q; want a 400 MissingParameter", answer)
	}
	time.Sleep(100 * time.Millisecond) // the failed connections' error handlers have run
	if n := counterValue(s.m.rejected[errMissingParameter]); n != 1 {
		t.Errorf("the request over TLS counted %v times; want 1", n)
	}
	if n := counterValue(s.m.rejected[errInvalidRequest]); n != 0 {
		t.Errorf("InvalidRequest counted %v times; want 0: the failed handshakes carried no request", n)
	}
}
