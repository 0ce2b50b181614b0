// Package memtest holds what the memory tests of several packages share:
// how many keys to cache and how to read the live heap.
package memtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// LiveHeap is the heap still reachable after a full collection.
func LiveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Keys is how many keys a memory test caches: the benchmark's 100,000 with
// EC2PROXY_MEM_KEYS=100000, fewer by default to stay quick (the cost per
// key hardly depends on the count).
func Keys(t testing.TB) int {
	if s := os.Getenv("EC2PROXY_MEM_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("EC2PROXY_MEM_KEYS=%q", s)
		}
		return n
	}
	if testing.Short() {
		return 5000
	}
	return 20000
}

// RandomHex is n random hex digits (n even), like generated keys.
func RandomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
