package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ListenControl opens a TCP listener on the control node's lab address
// (the namespace the drover CLI runs in), on port (0: any): a test serves
// from it what coordinators and hosts must reach, such as a webhook
// receiver or a dashboard's browser, without a process of its own.
func (l *Lab) ListenControl(port int) (net.Listener, error) {
	ctl := l.topo.Control()
	addr := net.JoinHostPort(ctl.Address.String(), fmt.Sprint(port))
	var ln net.Listener
	var err error
	if nerr := inNode(l, ctl.Name, func() { ln, err = net.Listen("tcp", addr) }); nerr != nil {
		return nil, nerr
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: listen on %s in %s: %w", l.ID, addr, ctl.Name, err)
	}
	return ln, nil
}

// inNode runs fn on a thread in node's network namespace: sockets fn creates
// live there. The thread is never returned to the runtime (it exits with the
// goroutine), so no other code ever runs in that namespace by accident.
func inNode(l *Lab, node string, fn func()) error {
	ns, err := l.nodeNS(node)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// DialControl opens a TCP connection to addr from the control node's
// namespace: how a test process reaches a lab address (a coordinator's API)
// without routing out of the root namespace.
func (l *Lab) DialControl(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	if nerr := inNode(l, l.topo.Control().Name, func() { c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr) }); nerr != nil {
		return nil, nerr
	}
	return c, err
}
