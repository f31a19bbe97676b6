package stream

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// listener is the embedded broker's listener: it accepts the connections of
// its TCP listener and the in-process ones that Broker.DialContext makes.
// An in-process connection is a net.Pipe: the same Kafka protocol bytes,
// handed from goroutine to goroutine without a socket, a system call or a
// wake-up through the network poller on either side.
type listener struct {
	net.Listener // TCP

	pipes    chan net.Conn
	accepted chan acceptResult
	done     chan struct{}
	close    sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newListener(tcp net.Listener) *listener {
	l := &listener{
		Listener: tcp,
		pipes:    make(chan net.Conn),
		accepted: make(chan acceptResult),
		done:     make(chan struct{}),
	}
	go l.acceptTCP()
	return l
}

// acceptTCP hands the TCP listener's connections to Accept until its first
// error, which Accept reports too: kfake stops accepting at an error, as it
// did on the bare TCP listener.
func (l *listener) acceptTCP() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepted:
		return r.conn, r.err
	case c := <-l.pipes:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	err := net.ErrClosed
	l.close.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// dial makes an in-process connection to the broker.
func (l *listener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.pipes <- server:
		return client, nil
	case <-l.done:
		return nil, fmt.Errorf("dial embedded broker: %w", net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("dial embedded broker: %w", ctx.Err())
	}
}
