package app

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notify tells systemd about the service's state (sd_notify(3)) when it
// runs ec2proxy as Type=notify: "READY=1" once it serves, "RELOADING=1"
// while a SIGHUP is applied, "STOPPING=1" while it drains. Without
// NOTIFY_SOCKET (not run by systemd) it does nothing. systemd then starts
// units ordered after ec2proxy only once it listens, and `systemctl
// reload` returns once the reload is applied.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q is not a unix socket path", path)
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // the abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("NOTIFY_SOCKET: %w", err)
	}
	return nil
}

// ReloadingState is the notification that a reload starts: systemd 253's
// Type=notify-reload wants the time it began on CLOCK_MONOTONIC.
func ReloadingState() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}
