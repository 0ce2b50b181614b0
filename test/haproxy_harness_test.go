package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type haproxy struct {
	addr  string // the frontend, 127.0.0.1:port
	stats string // stats listener, 127.0.0.1:port
	cmd   *exec.Cmd
	done  chan struct{}
	log   *syncBuffer
}

// haproxyGlobal is the start of every generated configuration: logs to
// stdout (the test shows them on failure), a stats page for server states
// and retry counters.
const haproxyGlobal = `global
    maxconn 4000
    log stdout format raw local0 info

defaults
    log global
    timeout connect 500ms
    timeout client 30s
    timeout server 30s
    timeout check 1s

listen stats
    mode http
    bind %s
    stats enable
    stats uri /stats
`

// haproxyBackend is the recommended EC2 backend section (the one in
// configs/examples/haproxy.cfg, with test timings), checking check on the
// admin listener: a failed connection is retried, on another replica each
// time; a request sent to a replica that then died without answering is
// replayed only if it is read-only (Describe*, Get*: the signature is then
// checked again, nothing else happens twice). Server lines follow.
func haproxyBackend(name, check string) string {
	return fmt.Sprintf(`
backend %s
    mode http
    balance roundrobin
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request
    acl ec2_read_only url_param(Action) -m beg Describe Get
    acl ec2_read_only req.body_param(Action) -m beg Describe Get
    http-request disable-l7-retry unless ec2_read_only
    option httpchk GET %s
    http-check expect status 200
    default-server inter 300ms fastinter 200ms downinter 300ms fall 2 rise 2
`, name, check)
}

// haproxyBinary finds haproxy, which Debian installs in /usr/sbin (not
// always on a non-root PATH).
func haproxyBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
			return "/usr/sbin/haproxy"
		}
	}
	return requireTool(t, "haproxy")
}

// startHAProxy runs haproxy with config, whose EC2 frontend binds front
// and whose stats page binds stats.
func startHAProxy(t *testing.T, front, stats, config string) *haproxy {
	t.Helper()
	bin := haproxyBinary(t)
	h := &haproxy{addr: front, stats: stats, log: &syncBuffer{}}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c refused the configuration: %v\n%s\n%s", err, out, config)
	}
	h.cmd = exec.Command(bin, "-db", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	h.cmd.SysProcAttr = diesWithTest()
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.done = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("haproxy log (last 6000 bytes):\n%s", tail(h.log.String(), 6000))
		}
	})
	return h
}

func (h *haproxy) url() string { return "http://" + h.addr }

// serverStates reads the stats page: server → status (UP, DOWN, ...), the
// server named alone in backend ec2proxy, as backend/server in others; and
// backend ec2proxy's counters.
func (h *haproxy) serverStates() (map[string]string, map[string]string) {
	code, body, err := httpGet("http://" + h.stats + "/stats;csv")
	if err != nil || code != 200 {
		return nil, nil
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		return nil, nil
	}
	cols := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	states, counters := map[string]string{}, map[string]string{}
	for _, line := range lines[1:] {
		fields := strings.Split(line, ",")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(fields) {
				row[c] = fields[i]
			}
		}
		switch {
		case row["pxname"] == "ec2proxy" && row["svname"] == "BACKEND":
			for _, c := range []string{"stot", "wretr", "wredis", "eresp", "econ", "hrsp_5xx"} {
				counters[c] = row[c]
			}
		case row["svname"] == "FRONTEND" || row["svname"] == "BACKEND" || row["pxname"] == "stats":
		case row["pxname"] == "ec2proxy":
			states[row["svname"]] = row["status"]
		default:
			states[row["pxname"]+"/"+row["svname"]] = row["status"]
		}
	}
	return states, counters
}

// waitStates waits until every named server has the wanted status (UP or
// DOWN); it returns how long that took.
func (h *haproxy) waitStates(t *testing.T, limit time.Duration, want map[string]string) time.Duration {
	t.Helper()
	var states map[string]string
	took, ok := eventually(limit, func() bool {
		states, _ = h.serverStates()
		for name, w := range want {
			if states[name] != w {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("haproxy servers %v after %v; want %v", states, limit, want)
	}
	return took
}

// serverLine is one `server` line for replica r: traffic to its EC2
// listener, health checks to its admin listener.
func serverLine(r *replica, options string) string {
	_, adminPort, _ := net.SplitHostPort(r.adminAddr)
	return fmt.Sprintf("    server %s %s check port %s %s\n", r.name, r.addr, adminPort, options)
}

// ---------------------------------------------------------------------------
// Signed requests from Go, on any client (keep-alive, source address).
