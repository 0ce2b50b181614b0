//go:build !linux

package proxy

// openFilesLimit is unknown here.
func openFilesLimit() uint64 { return 0 }
