package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// The known-answer vectors sigv2 and sigv4 test against were captured from
// the real clients Debian ships. This captures them again from the clients
// installed here and compares, ignoring what changes with every run
// (timestamps and what is signed over them, the port): a client update that
// signs differently fails here, and so does a capture script that broke.
func TestVectorsMatchRealClients(t *testing.T) {
	testenv.Clients(t)
	for _, c := range []struct{ script, committed string }{
		{"clients/capture_sigv2_vectors.py", "../sigv2/testdata/vectors.json"},
		{"clients/capture_sigv4_vectors.py", "../sigv4/testdata/vectors.json"},
	} {
		t.Run(filepath.Base(c.script), func(t *testing.T) {
			t.Parallel()
			fresh := filepath.Join(t.TempDir(), "vectors.json")
			out, err := os.Create(fresh)
			if err != nil {
				t.Fatal(err)
			}
			capture := exec.Command("/usr/bin/python3", c.script, "--port", "0")
			capture.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
			var log bytes.Buffer
			capture.Stdout, capture.Stderr = out, &log
			err = capture.Run()
			out.Close()
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.script, err, log.String())
			}
			compare := exec.Command("/usr/bin/python3", "clients/compare_vectors.py", c.committed, fresh)
			compare.Env = capture.Env
			if diff, err := compare.CombinedOutput(); err != nil {
				t.Errorf("the clients installed here sign differently from the committed vectors (%v); recapture with the script if that is expected:\n%s", err, diff)
			}
		})
	}
}
