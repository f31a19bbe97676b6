package lake

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
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

// Checkpoint is _checkpoints/<topic>.json: the truth about what the lake
// holds, written atomically and only after the files it vouches for.
type Checkpoint struct {
	Topic      string                  `json:"topic"`
	Updated    time.Time               `json:"updated"`
	Partitions map[int32]PartitionMark `json:"partitions"`
}

// ReadCheckpoint reads a topic's checkpoint; a lake without one gets an
// empty checkpoint and found false.
func ReadCheckpoint(ctx context.Context, st Storage, topic string) (cp *Checkpoint, found bool, err error) {
	b, err := st.ReadFile(ctx, CheckpointName(topic))
	if isNotExist(err) {
		return &Checkpoint{Topic: topic, Partitions: map[int32]PartitionMark{}}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	cp = &Checkpoint{}
	if err := json.Unmarshal(b, cp); err != nil {
		return nil, false, fmt.Errorf("read checkpoint %s: %w", CheckpointName(topic), err)
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

// Write saves the checkpoint atomically: readers see the old or the new
// one, never a mix.
func (c *Checkpoint) Write(ctx context.Context, st Storage, now time.Time) error {
	c.Updated = now.UTC()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := writeAtomic(ctx, st, CheckpointName(c.Topic), append(b, '\n')); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
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
