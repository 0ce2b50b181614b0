//go:build linux && race

package rawsock

import "syscall"

// Under the race detector the calls go through package syscall, whose Read
// and Write tell the detector that bytes written on one end happen before
// they are read on the other; raw calls would make every exchange over a
// socket look like a data race. The scheduler hand-off this package avoids
// does not matter there.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return err.(syscall.Errno)
}
