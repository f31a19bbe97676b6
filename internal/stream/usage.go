package stream

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
)

// DefaultSegmentBytes is the embedded broker's default log file size
// (BrokerConfig.SegmentBytes). kfake writes each partition's records to a
// file until it reaches this size, then begins the next one (it has no
// rolling by time), and:
//
//   - deletes a file only once every record in it is trimmed, so the last
//     file of a partition keeps its trimmed records' bytes on disk until
//     it fills up;
//   - when it starts after a clean stop, reads each file whole, a file per
//     partition at a time and all partitions at once, to index it: the
//     peak is about twice the index plus partitions × SegmentBytes (1M
//     retained records of one batch each, 4 partitions: 320 MiB with
//     16 MiB files, 990 MiB with 100 MiB ones; 73 MiB of index after);
//   - when it starts after a crash, reads every file at once (its snapshot
//     no longer matches the files): the peak is about 1.6 times the log on
//     disk, whatever the file size.
//
// kfake's own default, Kafka's, is 100 MiB. Smaller files cost more of
// them: two per segment (records and index), and a read descriptor for each
// closed one that a consumer has read, held until it is trimmed or the
// broker stops.
const DefaultSegmentBytes = 16 << 20

// minSegmentBytes is the smallest BrokerConfig.SegmentBytes: a single batch
// larger than it still fits (a file always takes its first batch), but a
// file per batch would exhaust descriptors.
const minSegmentBytes = 64 << 10

// Usage is what the embedded broker holds on disk.
type Usage struct {
	// Bytes is the size of every file under the broker's directory, and
	// Files their number: the log files (a record file and an index file
	// per segment of each partition) and the broker's state files.
	Bytes int64
	Files int
	// Partitions describes each partition of the broker's topic, by
	// partition number.
	Partitions []PartitionUsage
}

// PartitionUsage is one partition's retained records.
type PartitionUsage struct {
	Partition int32
	// Start is the log start offset and End the end offset (the high
	// watermark): the partition retains the End-Start records in between.
	Start, End int64
	// Bytes is the size of the retained records' batches. The files hold
	// more: trimmed records stay on disk until their whole file goes.
	Bytes int64
}

// Records is how many records the partition retains.
func (p PartitionUsage) Records() int64 { return p.End - p.Start }

// Usage measures the broker's directory and asks the broker about its
// topic's partitions. It reads the directory's entries, not the files, so
// it is cheap enough for every metrics scrape.
func (b *Broker) Usage() (Usage, error) {
	var u Usage
	err := filepath.WalkDir(b.dir, func(_ string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walked: a trimmed segment
		}
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		u.Bytes += info.Size()
		u.Files++
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("broker usage of %s: %w", b.dir, err)
	}
	b.closing.RLock()
	defer b.closing.RUnlock()
	if b.closed {
		return Usage{}, fmt.Errorf("broker usage: %w", net.ErrClosed)
	}
	for _, pi := range b.cluster.PartitionInfos(b.topic) {
		u.Partitions = append(u.Partitions, PartitionUsage{
			Partition: pi.Partition,
			Start:     pi.LogStartOffset,
			End:       pi.HighWatermark,
			Bytes:     pi.NumBytes,
		})
	}
	return u, nil
}
