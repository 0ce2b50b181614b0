package test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The README's first command: `ec2proxy demo` runs with no Redis and no
// Keystone, writes a 0600 ec2rc.sh, and real clients work with its keys.
func TestDemoCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ec2proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ec2proxy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(bin, "demo", "-listen", addr, "-admin-listen", freePort(t), "-dir", dir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "ec2proxy demo is running") {
				ready <- "ok"
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("demo exited: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("demo did not start in 30s")
	}

	rc := filepath.Join(dir, "ec2rc.sh")
	info, err := os.Stat(rc)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("ec2rc.sh: %v, mode %v; want 0600", err, info.Mode())
	}
	// Source it in bash, as a user would, and let a client use only those variables.
	script := `set -e; source "$1"; exec /usr/bin/python3 clients/ec2call.py --client boto2 --sigv2 HmacSHA256 --endpoint "$EC2_URL"`
	out, err := exec.Command("bash", "-c", script, "bash", rc).Output()
	if err != nil || !strings.Contains(string(out), `"ok": true`) {
		t.Errorf("boto2 with the demo's ec2rc.sh: %v %s", err, out)
	}
	script = `set -e; source "$1"; exec /usr/bin/python3 clients/ec2call.py --client botocore --sigv2 HmacSHA256 --endpoint "$EC2_URL" --action DescribeAvailabilityZones`
	out, err = exec.Command("bash", "-c", script, "bash", rc).Output()
	if err != nil || !strings.Contains(string(out), "nova") {
		t.Errorf("botocore with the demo's ec2rc.sh: %v %s", err, out)
	}

	// SIGTERM: drain and exit 0.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo exit after SIGTERM: %v; want status 0", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Error("demo did not exit within 30s of SIGTERM")
	}
}
