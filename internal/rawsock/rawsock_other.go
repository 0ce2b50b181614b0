//go:build !linux

package rawsock

import "net"

// Wrap returns c: raw system calls are only made on Linux.
func Wrap(c net.Conn) net.Conn { return c }
