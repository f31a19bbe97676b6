package stream

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
)

// Usage counts the files under the broker's directory and each partition's
// retained records, and refuses (rather than hangs) once the broker is
// closed.
func TestBrokerUsage(t *testing.T) {
	b := startBroker(t, filepath.Join(t.TempDir(), "broker"))
	empty := usage(t, b)
	publish(t, b, "ada", "bob", "ada")
	u := usage(t, b)
	if u.Bytes <= empty.Bytes || u.Files <= empty.Files {
		t.Errorf("after 3 records the directory holds %d bytes in %d files; empty, %d in %d", u.Bytes, u.Files, empty.Bytes, empty.Files)
	}
	var records, bytes int64
	for i, p := range u.Partitions {
		if p.Partition != int32(i) || p.Start != 0 {
			t.Errorf("partition %d: %+v", i, p)
		}
		records += p.Records()
		bytes += p.Bytes
	}
	if len(u.Partitions) != 2 || records != 3 || bytes <= 0 {
		t.Errorf("Usage reports %d partitions with %d records in %d bytes, want 2 partitions, 3 records", len(u.Partitions), records, bytes)
	}
	b.Close()
	if _, err := b.Usage(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Usage of a closed broker = %v, want net.ErrClosed", err)
	}
}
