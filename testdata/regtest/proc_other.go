//go:build !linux

package regtest

import "os/exec"

// dieWithParent does nothing off Linux: there is no parent-death signal,
// and Stop (run by each test's cleanup) ends the server.
func dieWithParent(*exec.Cmd) {}
