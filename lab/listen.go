package lab

import (
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenControl opens a TCP listener on the control node's lab address
// (the namespace the drover CLI runs in), on port (0: any): a test serves
// from it what coordinators and hosts must reach, such as a webhook
// receiver, without a process of its own. Coordinators reach it over the
// bridge; the test's own process reaches nothing in the lab but through it.
func (l *Lab) ListenControl(port int) (net.Listener, error) {
	ctl := l.topo.Control()
	ns, err := l.nodeNS(ctl.Name)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(ctl.Address.String(), fmt.Sprint(port))
	type result struct {
		ln  net.Listener
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The thread enters the namespace and is never handed back to the
		// runtime (it exits with this goroutine): the socket lives in the
		// namespace, and no other code runs there by accident.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			res <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		res <- result{ln, err}
	}()
	r := <-res
	if r.err != nil {
		return nil, fmt.Errorf("lab %s: listen on %s in %s: %w", l.ID, addr, ctl.Name, r.err)
	}
	return r.ln, nil
}
