package test

import (
	"bufio"
	"fmt"
	"io"
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

// ec2proxy serve behind a balancer speaking the PROXY protocol: the client
// address in the header is the one forwarded (X-Forwarded-For); a trusted
// peer without a header is cut off and counted; X-Forwarded-Host from the
// balancer is the host the signature is checked against.
func TestServeWithProxyProtocol(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("X-Forwarded-For"))
	}))
	defer backend.Close()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n"), 0o600)
	addr, admin := freePort(t), freePort(t)
	conf := filepath.Join(dir, "ec2proxy.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`listen: %q
admin_listen: %q
identity: {mode: standalone}
credentials: {file: %q}
routes: [{path_prefix: /, backend: %q}]
server: {proxy_protocol: true, trusted_proxies: [127.0.0.0/8], read_timeout: 2s}
`, addr, admin, creds, backend.URL)), 0o600)
	cli(t, nil, "check-config", "-config", conf).want(t, 0, "OK")
	cmd := exec.Command(binary(t), "serve", "-config", conf)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", admin)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	send := func(header, host string, extra http.Header) (int, string, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req, _ := http.NewRequest(http.MethodPost, "http://"+host+"/", strings.NewReader(signedForm(host, "AKA", "SKA", "DescribeRegions")))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		for k, v := range extra {
			req.Header[k] = v
		}
		io.WriteString(c, header)
		if err := req.Write(c); err != nil {
			return 0, "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return 0, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}

	status, body, err := send("PROXY TCP4 203.0.113.7 10.0.0.1 55555 8773\r\n", addr, nil)
	if err != nil || status != 200 || body != "203.0.113.7" {
		t.Errorf("with a PROXY header: %d %q %v; want 200 and the header's client as X-Forwarded-For", status, body, err)
	}
	// The client signed the public name it sent as Host; the
	// X-Forwarded-Host it sent too is not believed (the peer is the client
	// the PROXY header names, not a trusted balancer: in mode tcp the
	// balancer relays the client's bytes) and stands in nothing's way.
	status, body, err = send("PROXY TCP4 203.0.113.8 10.0.0.1 55555 8773\r\n", "ec2.example.com", http.Header{"X-Forwarded-Host": {"ec2.example.com"}})
	if err != nil || status != 200 {
		t.Errorf("Host signed, a client's X-Forwarded-Host beside it: %d %q %v; want 200", status, body, err)
	}
	if _, _, err := send("", addr, nil); err == nil {
		t.Error("a trusted peer without a PROXY header was served")
	}
	waitFor(t, 5*time.Second, func() bool {
		_, m := get(t, "http://"+admin+"/metrics")
		return strings.Contains(m, `ec2proxy_proxy_protocol_errors_total{reason="missing"} 1`)
	})
	if !strings.Contains(stderr.String(), "bad PROXY protocol header") {
		t.Errorf("the refused connection is not logged:\n%s", stderr.String())
	}
}
