//go:build !linux

package testproc

import "syscall"

// procAttr has nothing to add where the kernel cannot tie a child's life to
// its parent's: cleanup stops the server.
func procAttr() *syscall.SysProcAttr { return nil }
