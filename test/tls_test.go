package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "ec2proxy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(certFile+".tmp", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.Rename(keyFile+".tmp", keyFile) // as a certificate manager does: atomically
	os.Rename(certFile+".tmp", certFile)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// The EC2 listener over TLS; a replaced certificate is served without a
// restart.
func TestTLSListener(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, 1)
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n"), 0o600)
	addr := freePort(t)
	conf := filepath.Join(dir, "ec2proxy.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("listen: %q\nadmin_listen: \"\"\nidentity: {mode: standalone}\ncredentials: {file: %q}\nroutes: [{path_prefix: /, backend: %q}]\nserver: {tls: {cert_file: %q, key_file: %q}}\n",
		addr, creds, backend.URL, certFile, keyFile)), 0o600)
	cli(t, nil, "check-config", "-config", conf).want(t, 0, "OK")

	cmd := exec.Command(binary(t), "serve", "-config", conf)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	serial := func() (int64, string) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // we only read the serial
		if err != nil {
			return 0, err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), ""
	}
	waitFor(t, 10*time.Second, func() bool { s, _ := serial(); return s == 1 })
	// The event loop is on by default; TLS is the goroutine server's, and
	// the operator is told.
	if !strings.Contains(stderr.String(), "server.tls is set (the loop serves plain TCP)") {
		t.Errorf("no word at start of who serves the TLS listener:\n%s", stderr.String())
	}

	pool := x509.NewCertPool()
	pool.AddCert(first)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := client.Post("https://"+addr+"/", "application/x-www-form-urlencoded", strings.NewReader(signedForm(addr, "AKA", "SKA", "DescribeRegions")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "https" {
		t.Errorf("over TLS: %d %q; want 200 and X-Forwarded-Proto https", resp.StatusCode, body)
	}

	writeCert(t, certFile, keyFile, 2)
	waitFor(t, 5*time.Second, func() bool { s, _ := serial(); return s == 2 })
	// The new certificate is served as soon as it is swapped in; the log
	// line follows.
	if _, ok := eventually(2*time.Second, func() bool { return strings.Contains(stderr.String(), "TLS certificate reloaded") }); !ok {
		t.Errorf("reload not logged:\n%s", stderr.String())
	}
}
