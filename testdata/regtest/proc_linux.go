package regtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the server if the test process dies,
// so no registry outlives a crashed or killed test run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
