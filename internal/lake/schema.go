package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind is a column's type as inferred from JSON values.
type Kind string

// Kinds. A JSON array is kept as its JSON text in a string column.
const (
	KindBool      Kind = "bool"
	KindInt       Kind = "int"    // INT64
	KindFloat     Kind = "float"  // DOUBLE
	KindString    Kind = "string" // BYTE_ARRAY, UTF-8
	KindTimestamp Kind = "timestamp"
	KindStruct    Kind = "struct" // a JSON object: a group of nullable columns
)

// Field is one column of an event type: a name, a kind and, for a struct,
// its own fields. Every field is nullable: an event without it gets NULL.
type Field struct {
	Name   string  `json:"name"`
	Kind   Kind    `json:"type"`
	Fields []Field `json:"fields,omitempty"`
}

// Reserved column names: the lineage columns every events file ends with,
// and the hive partition keys that only the directory names hold. A record
// that carries one of them is quarantined rather than silently overwritten.
const (
	ColPartition = "kafka_partition"
	ColOffset    = "kafka_offset"
	ColTimestamp = "kafka_timestamp"
	ColEventType = "event_type"
	ColEventTime = "event_time"
	ColEventDate = "event_date"
)

// Reserved reports whether a top-level JSON field name may not appear in an
// event: the lineage columns and event_date.
func Reserved(name string) bool {
	return name == ColPartition || name == ColOffset || name == ColTimestamp || name == ColEventDate
}

// Version is one step of a schema's history.
type Version struct {
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	Changes []string  `json:"changes"`
	Fields  []Field   `json:"fields"`
}

// Schema is what the lake knows of one event type: its fields in column
// order, and the history of versions that led to them. Its files hold these
// fields then the lineage columns. A Schema is never changed once made:
// widening makes a new one.
type Schema struct {
	EventType string    `json:"event_type"`
	Version   int       `json:"version"`
	Fields    []Field   `json:"fields"`
	History   []Version `json:"history"`
}

// Fields of a version; nil when the schema never had that version.
func (s *Schema) FieldsOf(version int) []Field {
	for _, v := range s.History {
		if v.Version == version {
			return v.Fields
		}
	}
	return nil
}

// Merge widens fields so that a value of every observed field fits, and
// says what changed. It never narrows and never reorders: a new field goes
// last, int meets float as float, any other disagreement becomes string.
// fields is not modified.
func Merge(fields, observed []Field) ([]Field, []string) {
	var changes []string
	out := fields
	cloned := false
	clone := func() {
		if !cloned {
			out = slices.Clone(fields)
			cloned = true
		}
	}
	for _, o := range observed {
		i := slices.IndexFunc(out, func(f Field) bool { return f.Name == o.Name })
		if i < 0 {
			clone()
			out = append(out, o)
			changes = append(changes, "add "+o.Name+" "+string(o.Kind))
			continue
		}
		cur := out[i]
		switch {
		case cur.Kind == o.Kind && cur.Kind == KindStruct:
			sub, subChanges := Merge(cur.Fields, o.Fields)
			if len(subChanges) > 0 {
				clone()
				out[i].Fields = sub
				for _, c := range subChanges {
					changes = append(changes, strings.Replace(c, " ", " "+o.Name+".", 1))
				}
			}
		case cur.Kind == o.Kind, cur.Kind == KindString, cur.Kind == KindFloat && o.Kind == KindInt:
		default:
			to := KindString
			if cur.Kind == KindInt && o.Kind == KindFloat {
				to = KindFloat
			}
			clone()
			out[i] = Field{Name: cur.Name, Kind: to}
			changes = append(changes, "widen "+o.Name+" "+string(cur.Kind)+" to "+string(to)+" (seen "+string(o.Kind)+")")
		}
	}
	return out, changes
}

// Schemas holds the schema of every event type of a lake, loaded from and
// saved to _schemas/<type>.json. Safe for concurrent use.
type Schemas struct {
	st Storage
	mu sync.Mutex
	m  map[string]*Schema
}

// LoadSchemas reads every schema the lake has.
func LoadSchemas(ctx context.Context, st Storage) (*Schemas, error) {
	s := &Schemas{st: st, m: map[string]*Schema{}}
	files, err := st.List(ctx, SchemasDir)
	if err != nil {
		return nil, err
	}
	for _, fi := range files {
		name := fi.Name
		if IsPending(name) || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := st.ReadFile(ctx, name)
		if err != nil {
			return nil, err
		}
		var sc Schema
		if err := json.Unmarshal(b, &sc); err != nil {
			return nil, fmt.Errorf("read schema %s: %w", name, err)
		}
		if SchemaName(sc.EventType) != name {
			return nil, fmt.Errorf("read schema %s: it describes event type %q", name, sc.EventType)
		}
		s.m[sc.EventType] = &sc
	}
	return s, nil
}

// Get returns the current schema of an event type, or nil.
func (s *Schemas) Get(eventType string) *Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[eventType]
}

// All returns every schema, by event type.
func (s *Schemas) All() map[string]*Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*Schema, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// Widen merges observed fields into an event type's schema. When that
// changes anything, it records a new version in _schemas/<type>.json
// (before any file uses it) and returns the new schema; otherwise it
// returns the current one.
//
// Several extracts may widen one lake's schemas (a consumer group's
// workers): a change is made under the type's schema lock in the lake
// (see TryLock), from the version the lake holds then, so that each
// version number means one set of fields.
func (s *Schemas) Widen(ctx context.Context, eventType string, observed []Field, now time.Time) (*Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[eventType]
	var fields []Field
	if cur != nil {
		fields = cur.Fields
	}
	if _, changes := Merge(fields, observed); cur != nil && len(changes) == 0 {
		return cur, nil
	}
	lock, err := s.lockSchema(ctx, eventType)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if latest, err := s.read(ctx, eventType); err != nil {
		return nil, err
	} else if latest != nil && (cur == nil || latest.Version > cur.Version) {
		cur = latest // another writer widened it meanwhile
		s.m[eventType] = cur
		fields = cur.Fields
	}
	merged, changes := Merge(fields, observed)
	if cur != nil && len(changes) == 0 {
		return cur, nil
	}
	next := &Schema{EventType: eventType, Version: 1, Fields: merged}
	if cur != nil {
		next.Version = cur.Version + 1
		next.History = slices.Clone(cur.History)
	}
	if changes == nil {
		changes = []string{}
	}
	next.History = append(next.History, Version{Version: next.Version, Time: now.UTC(), Changes: changes, Fields: merged})
	if err := writeJSON(ctx, s.st, SchemaName(eventType), next); err != nil {
		return nil, fmt.Errorf("save schema %s: %w", eventType, err)
	}
	s.m[eventType] = next
	return next, nil
}

// lockSchema takes the lake's lock on an event type's schema, waiting
// while another writer holds it.
func (s *Schemas) lockSchema(ctx context.Context, eventType string) (Lock, error) {
	for {
		l, err := TryLock(ctx, s.st, "_schema."+eventType)
		if !errors.Is(err, ErrLocked) {
			if err != nil {
				return nil, fmt.Errorf("save schema %s: %w", eventType, err)
			}
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("save schema %s: %w", eventType, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// read reads an event type's schema as the lake holds it now; nil when
// it has none.
func (s *Schemas) read(ctx context.Context, eventType string) (*Schema, error) {
	var sc Schema
	found, err := readJSON(ctx, s.st, SchemaName(eventType), "schema ", &sc)
	if err != nil || !found {
		return nil, err
	}
	if sc.EventType != eventType {
		return nil, fmt.Errorf("read schema %s: it describes event type %q", SchemaName(eventType), sc.EventType)
	}
	return &sc, nil
}

func writeAtomic(ctx context.Context, st Storage, name string, b []byte) error {
	f, err := st.Create(ctx, name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Commit(""); err != nil {
		return err
	}
	return st.SyncDir(ctx, path.Dir(name))
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
