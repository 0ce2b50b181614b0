//go:build linux

package proxy

import "syscall"

// openFilesLimit is the process's soft limit on open files
// (RLIMIT_NOFILE), or 0 if unknown.
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	return r.Cur
}
