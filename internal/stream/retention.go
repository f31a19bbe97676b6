package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Retention: the primitives a caller combines to delete a topic's oldest
// records once they are safe elsewhere. Both speak the Kafka protocol, so
// they work against the embedded broker and a real Kafka cluster alike:
//
//	cut, _ := OffsetsAt(ctx, brokers, topic, time.Now().Add(-retention))
//	before := min(cut[p], lake checkpoint's next offset of p), per partition
//	starts, _ := Trim(ctx, brokers, topic, before)
//
// A consumer positioned below a partition's new start is told
// OFFSET_OUT_OF_RANGE by the broker; kgo then resumes at the new start
// without reporting an error (ConsumeResetOffset), so a reader that still
// needs the deleted records skips them silently: never trim past what every
// such reader has safely stored. (Producer.Contains, which reads from a
// pending change's position, refuses a trimmed range with a *TrimmedError.)
//
// What a trim frees, and what a restart of the embedded broker costs, is
// kfake's business: see DefaultSegmentBytes.

// TrimmedError says that records a reader asked for were deleted: the
// partition now starts past them, so the log cannot tell what they were.
type TrimmedError struct {
	Topic     string
	Partition int32
	// From is the first offset asked for, Start the partition's start.
	From, Start int64
}

func (e *TrimmedError) Error() string {
	return fmt.Sprintf("%s/%d: the records from offset %d were deleted: the partition starts at %d", e.Topic, e.Partition, e.From, e.Start)
}

// OffsetsAt returns, for each partition of topic, the offset of its first
// record stamped at or after t: every record below it is older than t. A
// partition whose retained records are all older than t answers its end
// offset. (Kafka's ListOffsets by timestamp; a record's timestamp is the
// producer's clock when it was produced.)
//
// Where the broker finds nothing at or after t although the partition's
// newest timestamp is at or after t (Kafka gives up when the segment it
// searches holds only deleted records past t, which producers with skewed
// clocks can cause), the partition answers its log start offset: nothing
// in it is known to be older than t.
func OffsetsAt(ctx context.Context, brokers []string, topic string, t time.Time) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("offsets of %s at %s: %w", topic, t.Format(time.RFC3339), err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ms := t.UnixMilli()
	listed, err := adm.ListOffsetsAfterMilli(ctx, ms, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("offsets of %s at %s: %w", topic, t.Format(time.RFC3339), unavailable(err))
	}
	at := map[int32]int64{}
	var unsure []int32 // no record found at or after t: the end offset stands in
	listed.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		at[o.Partition] = o.Offset
		if o.Timestamp < 0 {
			unsure = append(unsure, o.Partition)
		}
	})
	if len(at) == 0 {
		return nil, fmt.Errorf("offsets of %s at %s: %w", topic, t.Format(time.RFC3339), errNoTopic)
	}
	if len(unsure) == 0 {
		return at, nil
	}
	newest, err := adm.ListMaxTimestampOffsets(ctx, topic)
	if err == nil {
		err = newest.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("newest timestamps of %s: %w", topic, unavailable(err))
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, unavailable(err))
	}
	for _, p := range unsure {
		n, ok := newest.Lookup(topic, p)
		if !ok || n.Offset < 0 || n.Timestamp < ms {
			continue // nothing retained is as new as t: the end offset is right
		}
		if s, ok := starts.Lookup(topic, p); ok {
			at[p] = s.Offset
		}
	}
	return at, nil
}

// Trim deletes, in each partition p of before, the records below offset
// before[p] (Kafka's DeleteRecords: the partition's log start offset moves
// up to before[p]), and returns every partition's log start offset
// afterwards. A partition whose start is already at or past before[p] is
// left alone. An offset past a partition's end, or a partition the topic
// does not have, fails the whole call before anything is deleted: the
// caller's offsets do not describe this topic.
//
// Trim never deletes a partition's last record, even when before[p] is
// the partition's end: kfake forgets the end offset of a partition without
// records when it restarts, and would number new records from 0 again,
// offsets the lake already holds. (A partition directory without record
// files is loaded as an empty log: kfake's persist.go, loadPartition and
// loadPartitionFullReplay.)
//
// What happens to the deleted records' bytes is the broker's business: a
// real Kafka and the embedded broker both delete a log file once every
// record in it is deleted (see Broker.Usage).
func Trim(ctx context.Context, brokers []string, topic string, before map[int32]int64) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("trim %s: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, ends, err := Bounds(ctx, adm, topic)
	if err != nil {
		return nil, fmt.Errorf("trim %s: %w", topic, err)
	}
	del := kadm.Offsets{}
	for p, off := range before {
		end, ok := ends[p]
		if !ok {
			return nil, fmt.Errorf("trim %s: no partition %d", topic, p)
		}
		if off > end {
			return nil, fmt.Errorf("trim %s: partition %d: offset %d is past the end %d", topic, p, off, end)
		}
		off = min(off, end-1) // the last record stays: see Trim
		// Kafka ignores an offset below the start; kfake refuses it.
		if off > starts[p] {
			del.AddOffset(topic, p, off, -1)
		}
	}
	if len(del) == 0 {
		return starts, nil
	}
	resps, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		return nil, fmt.Errorf("trim %s: %w", topic, unavailable(err))
	}
	for _, r := range resps[topic] {
		if r.Err != nil {
			return nil, fmt.Errorf("trim %s: partition %d: %w", topic, r.Partition, r.Err)
		}
		starts[r.Partition] = r.LowWatermark
	}
	return starts, nil
}

// Bounds returns each partition of topic's log start offset and end
// offset (the high watermark). An unreachable broker is ErrUnavailable.
func Bounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	so, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = so.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", unavailable(err))
	}
	eo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = eo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", unavailable(err))
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	so.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			starts[o.Partition] = o.Offset
		}
	})
	eo.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			ends[o.Partition] = o.Offset
		}
	})
	if len(ends) == 0 {
		return nil, nil, errNoTopic
	}
	return starts, ends, nil
}

// errNoTopic is returned for a topic the brokers do not have.
var errNoTopic = errors.New("no such topic")

// unavailable wraps err in ErrUnavailable unless it says the topic does not
// exist, which no retry will change.
func unavailable(err error) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("%w: %w", errNoTopic, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
