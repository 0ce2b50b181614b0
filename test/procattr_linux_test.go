package test

import "syscall"

// diesWithTest makes a child process get SIGKILL when the test process
// dies, so a failed run leaves no replica or haproxy holding ports.
func diesWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
