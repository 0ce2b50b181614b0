package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"time"
)

const healthHelp = `Ask a running proxy, on its admin listener, whether it is alive (/healthz)
or ready to serve (-ready: /readyz, which checks Redis and Keystone); exit 0
if so, 1 if not. For container health checks: distroless images have no curl.`

func health(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("health", "[-config FILE | -addr HOST:PORT] [-ready]", stderr)
	path := configFlag(fs)
	addr := fs.String("addr", "", "the admin listener (default: admin_listen of the configuration)")
	ready := fs.Bool("ready", false, "ask /readyz (dependencies reachable) instead of /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	usage := fs.Usage
	fs.Usage = func() { fmt.Fprint(stderr, healthHelp+"\n\n"); usage() }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		cfg, err := loadConfig(*path)
		if err != nil {
			return err
		}
		if cfg.AdminListen == "" {
			return errors.New("admin_listen is empty in the configuration: no admin listener to ask")
		}
		*addr = cfg.AdminListen
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", *addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1" // listening everywhere: ask on loopback
	}
	endpoint := "/healthz"
	if *ready {
		endpoint = "/readyz"
	}
	url := "http://" + net.JoinHostPort(host, port) + endpoint
	resp, err := (&http.Client{Timeout: *timeout}).Get(url)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL
		}
		return fmt.Errorf("%s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s", url, body)
	return nil
}
