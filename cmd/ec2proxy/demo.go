package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/demobackend"
)

func demo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "[-listen ADDR] [-admin-listen ADDR] [-dir DIR]", stderr)
	listen := fs.String("listen", ":8773", "EC2 API address of the proxy")
	adminListen := fs.String("admin-listen", "127.0.0.1:8774", "address of /metrics, /healthz and /readyz")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "ec2proxy-demo"), "where the demo keeps its keys and ec2rc.sh")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := privateDir(*dir); err != nil {
		return err
	}
	rec, credFile, err := demoCredential(*dir)
	if err != nil {
		return err
	}
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	backend := &http.Server{Handler: &demobackend.Backend{}, ReadHeaderTimeout: 5 * time.Second}
	go backend.Serve(backendLn) //nolint:errcheck // ends with the process
	defer backend.Close()
	// The embedded configuration with the demo's addresses and files;
	// SIGHUP rebuilds it (re-reading the credentials file).
	load := func() (*configs.Config, error) {
		cfg, err := configs.Parse(configs.DemoYAML, os.Environ())
		if err != nil {
			return nil, fmt.Errorf("embedded demo configuration: %w", err)
		}
		cfg.Listen, cfg.AdminListen = *listen, *adminListen
		cfg.Credentials.File = credFile
		cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://" + backendLn.Addr().String()}}
		if problems := cfg.Validate(); len(problems) > 0 {
			return nil, problems
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}

	url := "http://" + hostPort(cfg.Listen) + "/"
	rcPath := filepath.Join(*dir, "ec2rc.sh")
	if err := writePrivate(rcPath, []byte(ec2rcScript(url, "RegionOne", rec))); err != nil {
		return err
	}
	return serveConfig(cfg, load, func() {
		fmt.Fprintf(stdout, `
ec2proxy demo is running (Ctrl-C stops it).

  EC2 endpoint   %[1]s
  access key     %[2]s
  secret key     %[3]s
  demo backend   http://%[4]s  (answers DescribeRegions, DescribeAvailabilityZones, ...)
  metrics        http://%[5]s/metrics
  keys and rc    %[6]s

Try it with a real client (boto 2 signing SigV2):

  source %[7]s
  /usr/bin/python3 - <<'PY'
import os, boto
from boto.ec2.connection import EC2Connection
from boto.ec2.regioninfo import RegionInfo
EC2Connection._required_auth_capability = lambda self: ['ec2']   # SigV2
c = EC2Connection(os.environ['EC2_ACCESS_KEY'], os.environ['EC2_SECRET_KEY'], is_secure=False,
                  region=RegionInfo(name='RegionOne', endpoint='127.0.0.1'), port=%[8]s, path='/')
print(c.get_all_regions())
PY

`, url, rec.AccessKey, rec.Secret, backendLn.Addr(), cfg.AdminListen, *dir, rcPath, portOf(cfg.Listen))
	})
}

// privateDir makes dir (mode 0700) or checks that the one there is a
// directory of this user's that nobody else can change: the demo trusts
// the key pair it finds there and writes its ec2rc.sh into it, and the
// default is in /tmp, where anyone could have made it first, with keys of
// their own or a symlink to a file of the user's (found by a review).
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory (a symlink?): remove it, or choose another with -dir", dir)
	case ok && int(sys.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to uid %d, not you: choose another with -dir", dir, sys.Uid)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is mode %04o: others could change what the demo trusts there; chmod 700 it, or choose another with -dir", dir, st.Mode().Perm())
	}
	return nil
}

// demoCredential reuses the demo's key pair from dir, or creates one.
func demoCredential(dir string) (credstore.Record, string, error) {
	path := filepath.Join(dir, "credentials.yaml")
	if f, err := credstore.LoadFile(path); err == nil && f.Len() == 1 {
		data, _ := os.ReadFile(path)
		var doc struct {
			Credentials []credstore.Record `yaml:"credentials"`
		}
		if yaml.Unmarshal(data, &doc) == nil && len(doc.Credentials) == 1 {
			return doc.Credentials[0], path, nil
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return credstore.Record{}, "", fmt.Errorf("%s is unreadable; delete it to start afresh: %w", path, err)
	}
	rec := credstore.Record{
		AccessKey: randomHex(), Secret: randomHex(), Enabled: true, CreatedAt: time.Now().UTC(),
		UserID: "demo-user", UserName: "demo", UserDomainID: "default",
		ProjectID: "demo-project", ProjectName: "demo", ProjectDomainID: "default",
		Roles: []string{"member", "reader"},
	}
	data, err := yaml.Marshal(map[string]any{"credentials": []credstore.Record{rec}})
	if err != nil {
		return rec, "", err
	}
	return rec, path, writePrivate(path, data)
}

// randomHex is 32 hex characters from crypto/rand, like Keystone's keys.
func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux (Go 1.24+ panics instead)
	return hex.EncodeToString(b)
}

// writePrivate writes a file holding a secret as a new file of the caller's,
// mode 0600, renamed over path: written in place, an existing file kept
// its owner and mode, and one another user owned (or could read) got the
// secret before the chmod failed (found by a review).
func writePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is there
	// CreateTemp makes it 0600; a umask cannot widen that.
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func ec2rcScript(url, region string, r credstore.Record) string {
	url, region = shellWord(url), shellWord(region)
	access, secret := shellWord(r.AccessKey), shellWord(r.Secret)
	return strings.Join([]string{
		"# ec2rc.sh for ec2proxy: source it, then use euca2ools, boto or awscli.",
		"# awscli before 2.13 (Debian 12 has 2.9) ignores AWS_ENDPOINT_URL_EC2:",
		"# aws --endpoint-url \"$EC2_URL\" ec2 describe-instances",
		"export EC2_URL=" + url,
		"export EC2_ACCESS_KEY=" + access,
		"export EC2_SECRET_KEY=" + secret,
		"export AWS_ACCESS_KEY_ID=" + access,
		"export AWS_SECRET_ACCESS_KEY=" + secret,
		"export AWS_ACCESS_KEY=" + access,
		"export AWS_SECRET_KEY=" + secret,
		"export AWS_ENDPOINT_URL_EC2=" + url,
		"export AWS_DEFAULT_REGION=" + region,
		"",
	}, "\n")
}

// shellWord is s as one shell word: as it is when it holds nothing the
// shell reads specially (the usual keys and URLs), else single-quoted. Keys
// are any string, and a sourced script must not run one (found by a
// review: a secret "x$(touch F)" ran touch).
func shellWord(s string) string {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+-./:=@_%,", c) >= 0) {
			return shellQuote(s)
		}
	}
	if s == "" {
		return "''"
	}
	return s
}

func hostPort(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func portOf(listen string) string {
	_, port, _ := net.SplitHostPort(listen)
	return port
}
