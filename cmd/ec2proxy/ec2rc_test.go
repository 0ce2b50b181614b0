package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ec2proxy/ec2proxy/credstore"
)

// Keys are any string (Keystone's, or creds create -access/-secret): the
// script must hand them over as they are, never run them (found by a
// review: a secret "x$(touch F)" ran touch when the script was sourced).
func TestEC2rcQuotesWhatItWrites(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	r := credstore.Record{AccessKey: "AK with 'quotes' and spaces", Secret: "x$(touch " + ran + ")`id`;\"$HOME\"\\"}
	url, region := "http://ec2.example.com:8773/services/Cloud/?a=1&b=2", "Region One"
	script := filepath.Join(dir, "ec2rc.sh")
	if err := os.WriteFile(script, []byte(ec2rcScript(url, region, r)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", `source "$1" && printf '%s\n' "$EC2_ACCESS_KEY" "$EC2_SECRET_KEY" "$AWS_SECRET_ACCESS_KEY" "$EC2_URL" "$AWS_DEFAULT_REGION"`, "bash", script).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing the script: %v\n%s", err, out)
	}
	if want := strings.Join([]string{r.AccessKey, r.Secret, r.Secret, url, region}, "\n") + "\n"; string(out) != want {
		t.Errorf("sourced values:\n%s\nwant:\n%s", out, want)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("sourcing the script ran a command from the secret")
	}
	// Plain keys stay as they always were: a line anyone can read.
	plain := ec2rcScript("http://127.0.0.1:8773/services/Cloud/", "RegionOne", credstore.Record{AccessKey: "AK0123", Secret: "abc+/=xyz"})
	if !strings.Contains(plain, "\nexport EC2_SECRET_KEY=abc+/=xyz\n") || !strings.Contains(plain, "\nexport EC2_URL=http://127.0.0.1:8773/services/Cloud/\n") {
		t.Errorf("plain values quoted needlessly:\n%s", plain)
	}
}

// The demo's directory is trusted (its key pair is reused, ec2rc.sh
// written there) only if it is this user's and nobody else can change it:
// the default is in /tmp (found by a review: a directory made there first
// by someone else was used, keys and symlinks included).
func TestDemoDirMustBePrivate(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	if err := privateDir(fresh); err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o700 {
		t.Errorf("made with mode %04o, want 0700", st.Mode().Perm())
	}
	if err := privateDir(fresh); err != nil {
		t.Errorf("reusing it: %v", err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if err := privateDir(open); err == nil || !strings.Contains(err.Error(), "mode 0777") {
		t.Errorf("a directory anyone can write: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(fresh, link)
	if err := privateDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symlink: %v", err)
	}
	if os.Getuid() == 0 {
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o700)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := privateDir(theirs); err == nil || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("another user's directory: %v", err)
		}
	}
}

// ec2rc -force replaces the file rather than writing into it: an existing
// file kept its owner (and, for a caller who could not chmod it, its mode),
// and another user who had planted it could read the secret (found by a
// review). The result is the caller's own, mode 0600.
func TestEC2rcForceReplacesSomeoneElsesFile(t *testing.T) {
	t.Setenv("EC2PROXY_CONFIG", "")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AK, secret: THE-SECRET, user_id: u, project_id: p}\n"), 0o600)
	cfg := standaloneFileConfig(t, dir, creds)
	out := filepath.Join(dir, "ec2rc.sh")
	os.WriteFile(out, nil, 0o666)
	os.Chmod(out, 0o666) // past the umask
	planted := os.Getuid() == 0 && os.Chown(out, 65534, 65534) == nil
	code, stdout, stderr := runCLI("ec2rc", "-config", cfg, "-access", "AK", "-url", "http://h:1/", "-o", out, "-force")
	if code != 0 {
		t.Fatalf("ec2rc exited %d: %s%s", code, stdout, stderr)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(out, &st); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "THE-SECRET") {
		t.Fatalf("the file lacks the secret:\n%s", data)
	}
	if st.Uid != uint32(os.Getuid()) || st.Mode&0o777 != 0o600 {
		t.Errorf("the secret is in a file owned by uid %d, mode %o (planted by another user: %v); want the caller's, 0600", st.Uid, st.Mode&0o777, planted)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".ec2rc.sh.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
