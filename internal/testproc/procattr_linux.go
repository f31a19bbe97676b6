package testproc

import "syscall"

// procAttr makes the kernel kill the server if the test process dies
// before its cleanup runs (a panic, a -timeout), so no server outlives it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
