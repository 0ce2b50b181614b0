//go:build linux && race

package uring

// Under the race detector New refuses, as package rawsock falls back to
// package syscall there: the detector cannot see bytes the kernel copies
// for a ring, so every exchange over a socket would look like a race.
const raceBuild = true
