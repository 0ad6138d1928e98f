package connlimit

import (
	"net"
	"testing"
	"time"
)

// The cap holds per source IP: the connection over it is closed at once,
// and a slot comes back when one of the open connections closes.
func TestCapPerSource(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan net.Addr, 10)
	l := New(inner, 2, func(a net.Addr) { refused <- a }).(*Listener)
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	third := dial()
	<-refused
	// The refused connection is closed by the server: a read ends.
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from a connection over the cap")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection over the cap was left open")
	}
	if n := l.Open("127.0.0.1"); n != 2 {
		t.Fatalf("%d open, want 2", n)
	}
	first.Close()
	first.Close() // a second Close gives nothing back twice
	if n := l.Open("127.0.0.1"); n != 1 {
		t.Fatalf("%d open after one closed, want 1", n)
	}
	dial()
	<-accepted
	second.Close()
}
