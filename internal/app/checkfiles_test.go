package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
)

// Secrets other users may read or change are flagged, with what they may
// do; group bits and anything but a regular file are not (the demo's
// credentials.file is /dev/null: the advice to chmod it was harmful, found
// by a review).
func TestFileWarnings(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		path string
		want string // "" for no warning
	}{
		{file("private", 0o600), ""},
		{file("group", 0o640), ""},
		{file("readable", 0o644), "is mode 0644: every user of this machine can read it; chmod o-rwx "},
		{file("writable", 0o602), "is mode 0602: every user of this machine can change it; chmod o-rwx "},
		{file("open", 0o666), "is mode 0666: every user of this machine can read and change it; chmod o-rwx "},
		{os.DevNull, ""},
		{filepath.Join(dir, "missing"), ""}, // check-config's problems say so
	} {
		cfg := configs.Default()
		cfg.Credentials.Store, cfg.Credentials.File = configs.StoreFile, tc.path
		got := FileWarnings(&cfg)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: warned %q", tc.path, got)
		case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], "credentials.file: "+tc.path+" "+tc.want+tc.path)):
			t.Errorf("%s: warnings %q; want one starting %q", tc.path, got, tc.want)
		}
	}
}
