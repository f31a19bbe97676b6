package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Start says where a tail begins in each partition, as kcat's -o does.
type Start struct {
	kind   startKind
	offset int64
}

type startKind int

const (
	startEnd startKind = iota
	startBeginning
	startOffset
)

// ParseStart reads "beginning", "end" or an absolute offset.
func ParseStart(s string) (Start, error) {
	switch s {
	case "beginning":
		return Start{kind: startBeginning}, nil
	case "end", "":
		return Start{kind: startEnd}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return Start{}, fmt.Errorf("offset %q: want beginning, end or a non-negative number", s)
	}
	return Start{kind: startOffset, offset: n}, nil
}

func (s Start) kgoOffset() kgo.Offset {
	switch s.kind {
	case startBeginning:
		return kgo.NewOffset().AtStart()
	case startOffset:
		return kgo.NewOffset().At(s.offset)
	default:
		return kgo.NewOffset().AtEnd()
	}
}

// Record is one record read from the topic.
type Record struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
}

// TailConfig configures Tail.
type TailConfig struct {
	Brokers []string
	Topic   string
	Start   Start
	// ExitAtEnd stops once every partition reached the end it had when the
	// tail started (kcat's -e).
	ExitAtEnd bool
}

// Tail calls fn with every record from cfg.Start on, in order within each
// partition, until ctx ends, fn fails, or (with ExitAtEnd) the end is reached.
func Tail(ctx context.Context, cfg TailConfig, fn func(Record) error) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(cfg.Start.kgoOffset()),
	)
	if err != nil {
		return fmt.Errorf("tail %s: %w", cfg.Topic, err)
	}
	defer cl.Close()

	// remaining holds, per partition, the offset to reach before stopping.
	var remaining map[int32]int64
	if cfg.ExitAtEnd {
		adm := kadm.NewClient(cl)
		ends, err := adm.ListEndOffsets(ctx, cfg.Topic)
		if err != nil {
			return fmt.Errorf("tail %s: list end offsets: %w", cfg.Topic, err)
		}
		if err := ends.Error(); err != nil {
			return fmt.Errorf("tail %s: list end offsets: %w", cfg.Topic, err)
		}
		starts, err := adm.ListStartOffsets(ctx, cfg.Topic)
		if err != nil {
			return fmt.Errorf("tail %s: list start offsets: %w", cfg.Topic, err)
		}
		remaining = make(map[int32]int64)
		ends.Each(func(o kadm.ListedOffset) {
			from := cfg.startOffset(o.Partition, starts, o.Offset)
			if from < o.Offset {
				remaining[o.Partition] = o.Offset
			}
		})
		if len(remaining) == 0 {
			return nil
		}
	}

	for {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("tail %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var done bool
		var fnErr error
		fetches.EachRecord(func(r *kgo.Record) {
			if fnErr != nil || done {
				return
			}
			end, tracked := remaining[r.Partition]
			if remaining != nil && (!tracked || r.Offset >= end) {
				return // past the end seen at start
			}
			fnErr = fn(Record{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value})
			if remaining != nil && r.Offset+1 >= end {
				delete(remaining, r.Partition)
				done = len(remaining) == 0
			}
		})
		if fnErr != nil {
			return fnErr
		}
		if done {
			return nil
		}
	}
}

// startOffset is where the tail starts reading partition p.
func (c TailConfig) startOffset(p int32, starts kadm.ListedOffsets, end int64) int64 {
	switch c.Start.kind {
	case startBeginning:
		if s, ok := starts.Lookup(c.Topic, p); ok {
			return s.Offset
		}
		return 0
	case startOffset:
		return c.Start.offset
	default:
		return end
	}
}
