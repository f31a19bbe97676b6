package stream

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// A producer in the broker's process connects through a pipe, TCP clients
// through the socket, and both see the same log.
func TestBrokerDialsInProcess(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	defer b.Close()
	ctx := context.Background()

	c, err := b.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LocalAddr().Network(); got != "pipe" {
		t.Errorf("DialContext(%s) made a %q connection, want an in-process pipe", b.Addr(), got)
	}
	c.Close()

	p := startProducer(t, ProducerConfig{Brokers: []string{b.Addr()}, Topic: "events", Dial: b.DialContext})
	for _, k := range []string{"ada", "bob", "ada"} {
		if _, _, err := p.Publish(ctx, []byte(k), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	publish(t, b, "bob") // over TCP
	if got := tail(t, b, "beginning"); len(got["ada"]) != 2 || len(got["bob"]) != 2 {
		t.Errorf("read %v, want 2 records of ada and 2 of bob", got)
	}
}

// Other addresses are dialled over TCP, and a closed broker refuses
// in-process connections instead of leaving them hanging.
func TestBrokerDialOtherAndClosed(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := b.DialContext(ctx, "tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != other.Addr().String() {
		t.Errorf("DialContext(%s) reached %s", other.Addr(), got)
	}
	c.Close()

	b.Close()
	if _, err := b.DialContext(ctx, "tcp", b.Addr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("DialContext on a closed broker = %v, want net.ErrClosed", err)
	}
}
