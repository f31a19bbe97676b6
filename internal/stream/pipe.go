package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// listener is the embedded broker's listener: it accepts the connections of
// its TCP listener and the in-process ones that Broker.DialContext makes.
// An in-process connection is a net.Pipe: the same Kafka protocol bytes,
// handed from goroutine to goroutine without a socket, a system call or a
// wake-up through the network poller on either side.
//
// kfake stops accepting, and closes the listener, at the first error Accept
// returns. So Accept returns an error only once the listener is closed: a
// failed TCP accept (EMFILE when the process is out of file descriptors,
// ECONNABORTED, ...) is retried after a backoff, as net/http's Server does,
// and in-process connections are accepted meanwhile.
type listener struct {
	net.Listener // TCP

	log      *slog.Logger
	pipes    chan net.Conn
	accepted chan net.Conn
	done     chan struct{} // closed by Close, or once the TCP listener is closed under it
	tcpDone  chan struct{} // closed when acceptTCP returns
	close    sync.Once
}

// The TCP accept backoff, net/http's: 5ms, doubling up to 1s, reset by the
// next connection accepted.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

func newListener(tcp net.Listener, log *slog.Logger) *listener {
	l := &listener{
		Listener: tcp,
		log:      log,
		pipes:    make(chan net.Conn),
		accepted: make(chan net.Conn),
		done:     make(chan struct{}),
		tcpDone:  make(chan struct{}),
	}
	go l.acceptTCP()
	return l
}

// acceptTCP hands the TCP listener's connections to Accept until Close. An
// accept error starts a backoff episode: it is logged once, at its first
// error, and retried at growing intervals until a connection comes.
func (l *listener) acceptTCP() {
	defer close(l.tcpDone)
	var (
		backoff time.Duration
		failed  int
		since   time.Time
	)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed under us, not by Close: nothing more will
				// come, so let kfake stop as it would on its own
				// listener. Its deferred Close ends the pipes too.
				l.closed()
				return
			}
			if backoff == 0 {
				backoff, since = minAcceptBackoff, time.Now()
				l.log.Warn("accept failed; retrying with backoff", "component", "broker", "addr", l.Addr().String(), "err", err)
			} else {
				backoff = min(2*backoff, maxAcceptBackoff)
			}
			failed++
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		if backoff != 0 {
			l.log.Info("accepting again", "component", "broker", "addr", l.Addr().String(),
				"failed_accepts", failed, "after", time.Since(since).Round(time.Millisecond))
			backoff, failed = 0, 0
		}
		select {
		case l.accepted <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

// closed makes Accept report net.ErrClosed, without waiting for acceptTCP
// (which calls it).
func (l *listener) closed() {
	l.close.Do(func() { close(l.done) })
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case c := <-l.pipes:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, TCP and in-process, and returns once acceptTCP
// has returned.
func (l *listener) Close() error {
	err := net.ErrClosed
	l.close.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	<-l.tcpDone
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
