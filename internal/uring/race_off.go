//go:build linux && !race

package uring

const raceBuild = false
