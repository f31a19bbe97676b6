package lake

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Top-level directories of a lake.
const (
	EventsDir      = "events"
	QuarantineDir  = "quarantine"
	CheckpointsDir = "_checkpoints"
	SchemasDir     = "_schemas"
)

// DataDirs are the directories that hold data files: events, then
// quarantine.
func DataDirs() []string { return []string{EventsDir, QuarantineDir} }

// The hive folders of an events file, and a data file's name around its
// partition and offsets.
const (
	typeKey    = "event_type="
	dateKey    = "event_date="
	partPrefix = "part-"
	partSuffix = ".parquet"
)

// mergePrefix starts the name a compaction creates its merged file under
// (it is published under its part's name), so that a pending merge tells
// itself apart from an extract's pending file: see IsMergePending.
const mergePrefix = "merge-"

// IsMergePending reports whether name is a compaction's merged file not
// yet published: being written, or left by a crash. The extract's
// recovery leaves it alone; the compaction removes its own leftovers.
func IsMergePending(name string) bool {
	return IsPending(name) && strings.Contains(path.Base(name), "-"+mergePrefix+partPrefix)
}

// partGlob matches the name of a published data file, and not the pending
// file a writer is still filling (Storage publishes a file by renaming it).
const partGlob = partPrefix + "*" + partSuffix

// Globs of the published data files, relative to the lake's root: every
// events file (hive-partitioned by event type and day) and every
// quarantine file.
const (
	EventsGlob     = EventsDir + "/*/*/" + partGlob
	QuarantineGlob = QuarantineDir + "/" + partGlob
)

// TypeGlob matches the published events files of one event type, relative
// to the lake's root.
func TypeGlob(eventType string) string {
	return EventsDir + "/" + typeKey + eventType + "/*/" + partGlob
}

// EventFolders reads the hive keys of an events file from the folders its
// path ends in (relative to the lake or not, / or \ separated): its event
// type and day, each empty when its folder is not one.
func EventFolders(file string) (eventType, date string) {
	dateDir := path.Dir(strings.ReplaceAll(file, `\`, "/"))
	return hiveValue(path.Base(path.Dir(dateDir)), typeKey), hiveValue(path.Base(dateDir), dateKey)
}

// hiveValue is the value of a key=value folder, or empty for another folder.
func hiveValue(folder, key string) string {
	v, ok := strings.CutPrefix(folder, key)
	if !ok {
		return ""
	}
	return v
}

// Part names a data file: the records of one Kafka partition from offset
// First to offset Last (both included; records of other event types or days
// in between live in other files).
type Part struct {
	EventType string // empty for a quarantine file
	Date      string // YYYY-MM-DD, empty for a quarantine file
	Partition int32
	First     int64
	Last      int64
}

// Name is the part's path in the lake.
func (p Part) Name() string {
	file := partPrefix + strconv.Itoa(int(p.Partition)) + "-" + strconv.FormatInt(p.First, 10) + "-" + strconv.FormatInt(p.Last, 10) + partSuffix
	if p.EventType == "" {
		return QuarantineDir + "/" + file
	}
	return EventsDir + "/" + typeKey + p.EventType + "/" + dateKey + p.Date + "/" + file
}

// Quarantined reports whether the part is a quarantine file.
func (p Part) Quarantined() bool { return p.EventType == "" }

// ParsePart reads a data file's name back; ok is false for any other file.
func ParsePart(name string) (Part, bool) {
	dir, file := path.Split(name)
	rest, ok := strings.CutPrefix(file, partPrefix)
	if !ok {
		return Part{}, false
	}
	rest, ok = strings.CutSuffix(rest, partSuffix)
	if !ok {
		return Part{}, false
	}
	nums := strings.Split(rest, "-")
	if len(nums) != 3 {
		return Part{}, false
	}
	var p Part
	part, err1 := strconv.ParseInt(nums[0], 10, 32)
	first, err2 := strconv.ParseInt(nums[1], 10, 64)
	last, err3 := strconv.ParseInt(nums[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first > last || part < 0 {
		return Part{}, false
	}
	p.Partition, p.First, p.Last = int32(part), first, last
	dir = strings.TrimSuffix(dir, "/")
	if dir == QuarantineDir {
		return p, true
	}
	dirs := strings.Split(dir, "/")
	if len(dirs) != 3 || dirs[0] != EventsDir {
		return Part{}, false
	}
	t, ok1 := strings.CutPrefix(dirs[1], typeKey)
	d, ok2 := strings.CutPrefix(dirs[2], dateKey)
	if !ok1 || !ok2 || ValidEventType(t) != nil {
		return Part{}, false
	}
	p.EventType, p.Date = t, d
	return p, true
}

// CheckpointName is where a topic's legacy whole-topic checkpoint lives:
// lakes written before each partition had a checkpoint of its own (see
// PartitionCheckpointName) hold it; it is read, and replaced on the
// next Checkpoint.Write.
func CheckpointName(topic string) string { return CheckpointsDir + "/" + topic + ".json" }

// PartitionCheckpointsDir holds a topic's checkpoints, one per partition.
func PartitionCheckpointsDir(topic string) string { return CheckpointsDir + "/" + topic }

// PartitionCheckpointName is where one partition's checkpoint lives:
// _checkpoints/<topic>/<partition>.json, written only by the extract that
// holds the partition's lock.
func PartitionCheckpointName(topic string, p int32) string {
	return PartitionCheckpointsDir(topic) + "/" + strconv.Itoa(int(p)) + ".json"
}

// PendingPart reads the data file a pending (unpublished) file of an
// extract will be published as; ok is false for any other file, a
// compaction's pending merge included.
func PendingPart(name string) (Part, bool) {
	dir, file := path.Split(name)
	rest, ok := strings.CutPrefix(file, pendingPrefix)
	if !ok {
		return Part{}, false
	}
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return Part{}, false
	}
	_, base, ok := strings.Cut(rest, "-") // the random part
	if !ok {
		return Part{}, false
	}
	return ParsePart(dir + base)
}

// SchemaName is where an event type's schema lives.
func SchemaName(eventType string) string { return SchemasDir + "/" + eventType + ".json" }

// ValidEventType says whether an event type can name a directory of the
// lake: 1 to 100 characters from [a-zA-Z0-9_.-], not starting with a dot.
// A record whose type is not valid is quarantined.
func ValidEventType(t string) error {
	if t == "" {
		return errors.New("event_type is empty")
	}
	if len(t) > 100 {
		return fmt.Errorf("event_type is %d bytes long, at most 100", len(t))
	}
	if t[0] == '.' {
		return fmt.Errorf("event_type %q starts with a dot", t)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("event_type %q holds %q: only letters, digits, _ . - are allowed", t, c)
		}
	}
	return nil
}
