package test

import (
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/demobackend"
)

// Run by systemd as Type=notify (configs/examples/ec2proxy.service),
// ec2proxy says READY=1 once it accepts connections, RELOADING=1 then
// READY=1 around a SIGHUP, and STOPPING=1 when it drains: systemd starts
// what is ordered after it only once it serves, and `systemctl reload`
// returns once the reload is applied.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	notes, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notes.Close()
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		notes.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := notes.Read(buf)
		if err != nil {
			t.Fatalf("no notification (want %s): %v", want, err)
		}
		if got := string(buf[:n]); strings.HasPrefix(got, want) {
			return got
		} else {
			t.Fatalf("notification %q, want %s", got, want)
		}
		return ""
	}
	backend := httptest.NewServer(&demobackend.Backend{})
	defer backend.Close()
	addr, conf := writeStandaloneConf(t, backend.URL, true)
	cmd, stderr, exited := startServe(t, conf, "NOTIFY_SOCKET="+sock)

	if got := next("READY=1"); !strings.Contains(got, "STATUS=serving on "+addr) {
		t.Errorf("READY notification %q does not say where it serves", got)
	}
	if c, err := net.Dial("tcp", addr); err != nil {
		t.Fatalf("READY=1 sent before the listener accepts: %v", err)
	} else {
		c.Close()
	}
	cmd.Process.Signal(syscall.SIGHUP)
	if got := next("RELOADING=1"); !strings.Contains(got, "\nMONOTONIC_USEC=") {
		t.Errorf("RELOADING notification %q lacks MONOTONIC_USEC", got)
	}
	next("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit after SIGTERM")
	}
	if strings.Contains(stderr.String(), "could not tell systemd") {
		t.Errorf("notification failures logged:\n%s", stderr.String())
	}
}

// The shipped unit file is one systemd accepts (systemd-analyze verify),
// with ExecStart pointing at a built binary.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("../configs/examples/ec2proxy.service")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/ec2proxy", binary(t))
	path := filepath.Join(t.TempDir(), "ec2proxy.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	// Lines about the host's own units (none booted here) are not ours.
	var ours []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, "ec2proxy.service") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
