package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PartitionMark is how far one Kafka partition is in the lake.
type PartitionMark struct {
	// Start is the first offset the lake is responsible for: the
	// partition's log start offset when the extract first read it (above 0
	// when retention had already deleted older records).
	Start int64 `json:"start"`
	// Next is the next offset to extract: every offset in [Start, Next) is
	// in exactly one events or quarantine file.
	Next int64 `json:"next"`
}

// Checkpoint is the truth about what the lake holds of a topic: one file
// per partition, _checkpoints/<topic>/<partition>.json, each written
// atomically and only after the files it vouches for, by the one extract
// that holds the partition's lock (see LockPartition). Lakes written
// before partitions had files of their own hold one file for the whole
// topic, _checkpoints/<topic>.json: it is still read, a partition's own
// file overriding it, and Write replaces it.
type Checkpoint struct {
	Topic      string                  `json:"topic"`
	Updated    time.Time               `json:"updated"`
	Partitions map[int32]PartitionMark `json:"partitions"`
}

// partitionCheckpoint is the content of _checkpoints/<topic>/<partition>.json.
type partitionCheckpoint struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Updated   time.Time `json:"updated"`
	PartitionMark
}

// ReadCheckpoint reads a topic's checkpoint: the legacy whole-topic file
// if there is one, overridden partition by partition by the partitions'
// own files. A lake without any gets an empty checkpoint and found false.
func ReadCheckpoint(ctx context.Context, st Storage, topic string) (cp *Checkpoint, found bool, err error) {
	cp, found, err = readLegacyCheckpoint(ctx, st, topic)
	if err != nil {
		return nil, false, err
	}
	files, err := st.List(ctx, PartitionCheckpointsDir(topic))
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint of %s: %w", topic, err)
	}
	for _, fi := range files {
		p, ok := parsePartitionCheckpoint(topic, fi.Name)
		if !ok {
			continue
		}
		m, updated, err := ReadPartitionCheckpoint(ctx, st, topic, p)
		if errors.Is(err, errNoCheckpoint) {
			continue // removed since listed
		}
		if err != nil {
			return nil, false, err
		}
		cp.Partitions[p] = m
		if updated.After(cp.Updated) {
			cp.Updated = updated
		}
		found = true
	}
	return cp, found, nil
}

var errNoCheckpoint = errors.New("no checkpoint")

// ReadPartitionCheckpoint reads one partition's own checkpoint file; the
// error wraps fs.ErrNotExist when there is none.
func ReadPartitionCheckpoint(ctx context.Context, st Storage, topic string, p int32) (PartitionMark, time.Time, error) {
	name := PartitionCheckpointName(topic, p)
	b, err := st.ReadFile(ctx, name)
	if isNotExist(err) {
		return PartitionMark{}, time.Time{}, fmt.Errorf("read checkpoint %s: %w (%w)", name, errNoCheckpoint, err)
	}
	if err != nil {
		return PartitionMark{}, time.Time{}, err
	}
	var pc partitionCheckpoint
	if err := json.Unmarshal(b, &pc); err != nil {
		return PartitionMark{}, time.Time{}, fmt.Errorf("read checkpoint %s: %w", name, err)
	}
	switch {
	case pc.Topic != topic || pc.Partition != p:
		return PartitionMark{}, time.Time{}, fmt.Errorf("read checkpoint %s: it is for topic %q partition %d", name, pc.Topic, pc.Partition)
	case pc.Start < 0 || pc.Next < pc.Start:
		return PartitionMark{}, time.Time{}, fmt.Errorf("read checkpoint %s: partition %d has start %d, next %d", name, p, pc.Start, pc.Next)
	}
	return pc.PartitionMark, pc.Updated, nil
}

// readJSON decodes the JSON file name of st into v; it returns false,
// with v untouched, when there is no such file. A decoding error says
// "read WHAT NAME" (what is "checkpoint " or empty).
func readJSON(ctx context.Context, st Storage, name, what string, v any) (bool, error) {
	b, err := st.ReadFile(ctx, name)
	if isNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, &decodeError{fmt.Errorf("read %s%s: %w", what, name, err)}
	}
	return true, nil
}

// decodeError is a file readJSON read but could not decode: damaged, not
// unreachable.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// writeJSON saves v, indented and ending with a newline, as the file name
// of st atomically (writeAtomic).
func writeJSON(ctx context.Context, st Storage, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return writeAtomic(ctx, st, name, append(b, '\n'))
}

func readLegacyCheckpoint(ctx context.Context, st Storage, topic string) (*Checkpoint, bool, error) {
	cp := &Checkpoint{}
	found, err := readJSON(ctx, st, CheckpointName(topic), "checkpoint ", cp)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return &Checkpoint{Topic: topic, Partitions: map[int32]PartitionMark{}}, false, nil
	}
	if cp.Topic != topic {
		return nil, false, fmt.Errorf("read checkpoint %s: it is for topic %q", CheckpointName(topic), cp.Topic)
	}
	if cp.Partitions == nil {
		cp.Partitions = map[int32]PartitionMark{}
	}
	for p, m := range cp.Partitions {
		if p < 0 || m.Start < 0 || m.Next < m.Start {
			return nil, false, fmt.Errorf("read checkpoint %s: partition %d has start %d, next %d", CheckpointName(topic), p, m.Start, m.Next)
		}
	}
	return cp, true, nil
}

// WritePartitionCheckpoint saves one partition's mark atomically: readers
// see the old or the new one, never a mix. Only the holder of the
// partition's lock may call it.
func WritePartitionCheckpoint(ctx context.Context, st Storage, topic string, p int32, m PartitionMark, now time.Time) error {
	pc := partitionCheckpoint{Topic: topic, Partition: p, Updated: now.UTC(), PartitionMark: m}
	if err := writeJSON(ctx, st, PartitionCheckpointName(topic, p), pc); err != nil {
		return fmt.Errorf("write checkpoint of partition %d: %w", p, err)
	}
	return nil
}

// Write saves every partition's mark in its own file, then removes the
// legacy whole-topic file, whose marks are all in the partitions' files
// by then (the migration of a lake written before). Only the holder of
// every partition's lock may call it.
func (c *Checkpoint) Write(ctx context.Context, st Storage, now time.Time) error {
	c.Updated = now.UTC()
	for _, p := range slices.Sorted(maps.Keys(c.Partitions)) {
		if err := WritePartitionCheckpoint(ctx, st, c.Topic, p, c.Partitions[p], now); err != nil {
			return err
		}
	}
	if err := st.Remove(ctx, CheckpointName(c.Topic)); err != nil && !isNotExist(err) {
		return fmt.Errorf("remove the legacy checkpoint: %w", err)
	}
	return nil
}

// parsePartitionCheckpoint reads the partition out of the name of a
// partition's checkpoint file.
func parsePartitionCheckpoint(topic, name string) (int32, bool) {
	dir, file := path.Split(name)
	if strings.TrimSuffix(dir, "/") != PartitionCheckpointsDir(topic) {
		return 0, false
	}
	num, ok := strings.CutSuffix(file, ".json")
	if !ok {
		return 0, false
	}
	p, err := strconv.ParseInt(num, 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != num {
		return 0, false
	}
	return int32(p), true
}

// Clone returns a deep copy.
func (c *Checkpoint) Clone() *Checkpoint {
	out := *c
	out.Partitions = maps.Clone(c.Partitions)
	return &out
}

// String is a one-line summary, partitions in order.
func (c *Checkpoint) String() string {
	s := c.Topic
	for p := int32(0); len(c.Partitions) > 0 && p <= maxKey(c.Partitions); p++ {
		if m, ok := c.Partitions[p]; ok {
			s += " " + strconv.Itoa(int(p)) + ":" + strconv.FormatInt(m.Start, 10) + "-" + strconv.FormatInt(m.Next, 10)
		}
	}
	return s
}

func maxKey(m map[int32]PartitionMark) int32 {
	var k int32
	for p := range m {
		k = max(k, p)
	}
	return k
}
