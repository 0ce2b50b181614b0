package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

func ec2rc(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ec2rc", "-access KEY [-url URL] [-o FILE]", stderr)
	path := configFlag(fs)
	access := fs.String("access", "", "access key of the credential (required)")
	url := fs.String("url", "", "EC2 endpoint users reach, e.g. https://ec2.example.com:8773/ (default: this host and the configured listen port)")
	region := fs.String("region", "RegionOne", "region for SigV4 clients (AWS_DEFAULT_REGION)")
	out := fs.String("o", "ec2rc.sh", "file to write; - for standard output")
	force := fs.Bool("force", false, "overwrite the file if it exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *access == "" {
		fmt.Fprintln(stderr, "ec2rc: -access is required")
		fs.Usage()
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *url == "" {
		host, port, _ := net.SplitHostPort(cfg.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			if host, err = os.Hostname(); err != nil {
				return fmt.Errorf("no -url given and the host name is unknown: %w", err)
			}
		}
		scheme := "http"
		if cfg.Server.TLS.CertFile != "" {
			scheme = "https"
		}
		*url = scheme + "://" + net.JoinHostPort(host, port) + "/"
	}
	store, done, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := timeout()
	defer cancel()
	r, err := getRecord(ctx, store, *access)
	if err != nil {
		return err
	}
	if !r.Enabled {
		fmt.Fprintf(stderr, "warning: %s is disabled; the proxy will refuse it until `creds enable`\n", r.AccessKey)
	}
	script := ec2rcScript(*url, *region, r)
	if *out == "-" {
		_, err := io.WriteString(stdout, script)
		return err
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return fmt.Errorf("%s exists; use -force to overwrite it", *out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := writePrivate(*out, []byte(script)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (mode 0600) for %s; use it with: source %s\n", *out, r.AccessKey, *out)
	return nil
}
