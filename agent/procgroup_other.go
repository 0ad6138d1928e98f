//go:build !unix

package agent

import "os/exec"

// setProcessGroup leaves cmd as it is: without Unix process groups, a
// cancelled command's own process is killed (exec's default) and its
// children may survive. Agents are meant for Unix hosts.
func setProcessGroup(*exec.Cmd) {}
