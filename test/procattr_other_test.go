//go:build !linux

package test

import "syscall"

func diesWithTest() *syscall.SysProcAttr { return nil }
