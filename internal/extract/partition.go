package extract

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/pqwrite"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rowGroupBytes is how many bytes of rows an open file buffers before it
// writes a row group.
const rowGroupBytes = 8 << 20

// partition is the worker for one Kafka partition: it owns that
// partition's open files and commits them together, so that every file it
// published is covered by the checkpoint it writes next.
type partition struct {
	e         *Extractor
	id        int32
	next      int64 // next offset to extract
	committed int64 // the checkpoint written last
	stop      int64 // without Follow, the high watermark to stop at; else -1
	schemas   *lake.Schemas
	budget    int64     // this partition's share of the memory budget
	lock      lake.Lock // the partition's lock in the lake

	// abandon, set before in is closed, makes run drop its open files
	// instead of committing them: the partition was lost.
	abandon atomic.Bool
	// final, set before in is closed, says the commit coming is the
	// last: the rebalance that stops the worker tells Kafka.
	final atomic.Bool
	err   error // run's, once exited is closed

	in       chan []*kgo.Record
	flush    chan chan error
	finished chan struct{} // closed when stop is reached
	exited   chan struct{} // closed when run returns

	types      map[string]*typeFiles
	quarantine *openFile
	buffered   int64           // bytes of rows buffered in open files
	oldest     time.Time       // when the oldest open file was created
	roll       bool            // a file reached max rows or bytes: commit after this batch
	dirs       map[string]bool // directories of files published since the last commit

	busy        time.Duration // time spent extracting batches
	perType     map[string]int64
	quarantined int64

	sc   scanner
	date []byte

	closed []*openFile // files closed before the commit, published by it
}

// typeFiles are a partition's open files of one event type, one per day.
type typeFiles struct {
	name  string
	files []*openFile
	last  *openFile // the file the previous event went to
	// records extracted into the files since the last commit, added to
	// perType when the partition drops its typeFiles (a map update per
	// record was 2% of the extract's CPU).
	records int64
}

type openFile struct {
	w          *lake.PartWriter
	date       string
	dayStart   int64 // microseconds: the day this file holds
	dayEnd     int64
	cols       *lake.Columns
	buffered   int64
	sinceCheck int
}

func (e *Extractor) newPartition(id int32, next, stop int64, schemas *lake.Schemas, partitions int) *partition {
	p := &partition{
		e: e, id: id, next: next, committed: next, stop: stop, schemas: schemas,
		budget:   max(e.cfg.memory/int64(partitions), 16<<10),
		in:       make(chan []*kgo.Record, 4),
		flush:    make(chan chan error),
		finished: make(chan struct{}),
		exited:   make(chan struct{}),
		types:    map[string]*typeFiles{},
		perType:  map[string]int64{},
		dirs:     map[string]bool{},
	}
	return p
}

// run extracts the records sent to the partition until in is closed.
// Files and checkpoints are written under commitCtx, which outlives the
// Run's context: stopping commits what is held.
func (p *partition) run(commitCtx context.Context) error {
	var tick <-chan time.Time
	if p.e.cfg.follow {
		t := time.NewTicker(min(max(p.e.cfg.maxAge/4, 10*time.Millisecond), time.Second))
		defer t.Stop()
		tick = t.C
	}
	finished := false
	for {
		select {
		case recs, ok := <-p.in:
			if !ok {
				if p.e.failed.Load() {
					return nil // as after a crash: the next run starts from the checkpoint
				}
				if p.abandon.Load() {
					p.abort()
					return nil
				}
				return p.commit(commitCtx)
			}
			if finished {
				continue
			}
			if err := p.batch(commitCtx, recs); err != nil {
				return err
			}
			if p.stop >= 0 && p.next >= p.stop {
				finished = true
				err := p.commit(commitCtx)
				close(p.finished)
				if err != nil {
					return err
				}
				continue
			}
		case <-tick:
			if !p.oldest.IsZero() && p.e.cfg.now().Sub(p.oldest) >= p.e.cfg.maxAge {
				if err := p.commit(commitCtx); err != nil {
					return err
				}
			}
		case req := <-p.flush:
			err := p.commit(commitCtx)
			req <- err
			if err != nil {
				return err
			}
		}
	}
}

// batch extracts fetched records.
func (p *partition) batch(commitCtx context.Context, recs []*kgo.Record) error {
	t0 := time.Now()
	defer func() {
		p.busy += time.Since(t0)
		p.e.cfg.logger.Debug("batch", "partition", p.id, "records", len(recs), "took", time.Since(t0), "busy", p.busy)
	}()
	n := int64(0)
	for _, r := range recs {
		if r.Offset < p.next {
			continue // already extracted (a re-fetch)
		}
		if p.stop >= 0 && r.Offset >= p.stop {
			break
		}
		// Files are written under commitCtx: a record half written
		// when the Run is cancelled is committed with the others.
		if err := p.record(commitCtx, r); err != nil {
			return err
		}
		p.next = r.Offset + 1
		n++
		if p.roll {
			if err := p.commit(commitCtx); err != nil {
				return err
			}
		}
	}
	if done := p.e.done.Add(n); p.e.cfg.follow && done > p.e.total.Load() {
		p.e.total.Store(done) // following, the end keeps moving
	}
	return nil
}

// record extracts one record into its event file, or into quarantine.
func (p *partition) record(ctx context.Context, r *kgo.Record) error {
	if err := p.sc.scan(r.Value); err != nil {
		return p.toQuarantine(ctx, r, err.Error())
	}
	vals := p.sc.vals
	typ, us, err := envelope(vals)
	if err != nil {
		return p.toQuarantine(ctx, r, err.Error())
	}
	f, tf, err := p.fileFor(ctx, typ, us, r.Offset)
	if err != nil {
		return err
	}
	if !p.fillRow(f, vals, r, us) {
		// The event does not fit: widen the type's schema, start a new
		// file with it and try again.
		sc, err := p.schemas.Widen(ctx, tf.name, shape(vals, 0, len(vals), true), p.e.cfg.now())
		if err != nil {
			return err
		}
		if sc != f.w.Schema {
			if f.w.Rows() > 0 {
				if err := p.closeFile(tf, f); err != nil {
					return err
				}
				if f, _, err = p.fileFor(ctx, typ, us, r.Offset); err != nil {
					return err
				}
			} else {
				// Nothing written yet: start the file over with the wider schema.
				if err := f.w.Abort(); err != nil {
					return err
				}
				p.forget(tf, f)
				if f, _, err = p.fileFor(ctx, typ, us, r.Offset); err != nil {
					return err
				}
			}
		}
		if !p.fillRow(f, vals, r, us) {
			return p.toQuarantine(ctx, r, "does not fit the widened schema of "+tf.name)
		}
	}
	if err := f.w.EndRow(r.Offset); err != nil {
		return err
	}
	tf.records++
	return p.account(tf, f)
}

// fillRow sets the values of f's next row from the event, whose
// event_time is us; false (and nothing set) if it does not fit.
func (p *partition) fillRow(f *openFile, vals []jvalue, r *kgo.Record, us int64) bool {
	if !fill(f.w, f.cols.Fields, vals, 0, len(vals), 1, us) {
		f.w.DropRow()
		return false
	}
	f.w.Int(f.cols.Partition, int64(p.id))
	f.w.Int(f.cols.Offset, r.Offset)
	f.w.Int(f.cols.KafkaTime, r.Timestamp.UnixMicro())
	return true
}

// account counts the bytes f (a file of tf, nil for the quarantine file)
// buffers and decides when to write a row group, or to roll the
// partition's files.
func (p *partition) account(tf *typeFiles, f *openFile) error {
	n := f.w.Buffered()
	p.buffered += n - f.buffered
	f.buffered = n
	// The roll check comes first: f may be finished below.
	if f.sinceCheck++; f.sinceCheck >= 1024 || f.w.Rows() >= p.e.cfg.maxRows {
		f.sinceCheck = 0
		if f.w.Rows() >= p.e.cfg.maxRows || f.w.Size() >= p.e.cfg.maxBytes {
			p.roll = true
		}
	}
	if n >= rowGroupBytes {
		if err := p.spill(tf, f); err != nil {
			return err
		}
	}
	// Over the budget, the largest file writes its rows as a row group.
	for p.buffered > p.budget {
		tf, big := p.largest()
		if big == nil || big.buffered == 0 {
			break
		}
		if err := p.spill(tf, big); err != nil {
			return err
		}
	}
	return nil
}

// spill frees the rows f buffers: it writes them as a row group, or, when
// f has written all the row groups a file may (each keeps its metadata in
// memory for the footer), finishes f, to be published with the next commit
// as after a schema change.
func (p *partition) spill(tf *typeFiles, f *openFile) error {
	// One row group stays for the rows Close writes.
	if f.w.RowGroups() < pqwrite.MaxRowGroups-1 {
		return p.flushRowGroup(f)
	}
	return p.closeFile(tf, f)
}

func (p *partition) flushRowGroup(f *openFile) error {
	if err := f.w.FlushRowGroup(); err != nil {
		return err
	}
	p.buffered -= f.buffered
	f.buffered = 0
	return nil
}

// largest is the open file that buffers the most, and its type's files
// (nil for the quarantine file).
func (p *partition) largest() (*typeFiles, *openFile) {
	var (
		big   *openFile
		bigTF *typeFiles
	)
	p.each(func(tf *typeFiles, f *openFile) {
		if big == nil || f.buffered > big.buffered {
			big, bigTF = f, tf
		}
	})
	return bigTF, big
}

func (p *partition) each(fn func(*typeFiles, *openFile)) {
	for _, tf := range p.types {
		for _, f := range tf.files {
			fn(tf, f)
		}
	}
	if p.quarantine != nil {
		fn(nil, p.quarantine)
	}
}

// fileFor returns the open file for an event of type typ at time us,
// opening it (with the type's current schema) when needed.
func (p *partition) fileFor(ctx context.Context, typ []byte, us, offset int64) (*openFile, *typeFiles, error) {
	tf := p.types[string(typ)]
	if tf == nil {
		tf = &typeFiles{name: string(typ)}
		p.types[tf.name] = tf
	}
	if f := tf.last; f != nil && us >= f.dayStart && us < f.dayEnd {
		return f, tf, nil
	}
	day := floorDay(us)
	for _, f := range tf.files {
		if f.dayStart == day {
			tf.last = f
			return f, tf, nil
		}
	}
	sc := p.schemas.Get(tf.name)
	if sc == nil {
		var err error
		if sc, err = p.schemas.Widen(ctx, tf.name, shape(p.sc.vals, 0, len(p.sc.vals), true), p.e.cfg.now()); err != nil {
			return nil, nil, err
		}
	}
	p.date = appendDate(p.date[:0], us)
	part := lake.Part{EventType: tf.name, Date: string(p.date), Partition: p.id, First: offset}
	w, err := p.e.files.Create(ctx, p.e.cfg.lake, part, sc)
	if err != nil {
		return nil, nil, err
	}
	cols := &sc.Layout().Columns
	f := &openFile{w: w, date: part.Date, dayStart: day, dayEnd: day + dayMicros, cols: cols}
	tf.files = append(tf.files, f)
	tf.last = f
	p.opened()
	return f, tf, nil
}

const dayMicros = 24 * 3600 * 1_000_000

func floorDay(us int64) int64 {
	d := us / dayMicros
	if us < 0 && us%dayMicros != 0 {
		d--
	}
	return d * dayMicros
}

func (p *partition) opened() {
	if p.oldest.IsZero() {
		p.oldest = p.e.cfg.now()
	}
}

// forget drops f from the open files without committing it (tf is nil for
// the quarantine file).
func (p *partition) forget(tf *typeFiles, f *openFile) {
	p.buffered -= f.buffered
	if tf == nil {
		p.quarantine = nil
		return
	}
	for i, g := range tf.files {
		if g == f {
			tf.files = append(tf.files[:i], tf.files[i+1:]...)
			break
		}
	}
	if tf.last == f {
		tf.last = nil
	}
}

// closeFile finishes one file before the partition commits, when its
// type's schema widened or it holds the most row groups a file may; the
// commit publishes it with the others.
func (p *partition) closeFile(tf *typeFiles, f *openFile) error {
	p.forget(tf, f)
	if err := f.w.Close(); err != nil {
		return err
	}
	p.closed = append(p.closed, f)
	return nil
}

// publish makes a closed file visible; its directory is synced before the
// next checkpoint.
func (p *partition) publish(f *openFile) error {
	part, size, err := f.w.Publish()
	if err != nil {
		return err
	}
	p.dirs[path.Dir(part.Name())] = true
	p.e.count(1, size)
	return p.hook(AfterFile, part)
}

func (p *partition) toQuarantine(ctx context.Context, r *kgo.Record, reason string) error {
	if p.quarantine == nil {
		part := lake.Part{Partition: p.id, First: r.Offset}
		w, err := p.e.files.Create(ctx, p.e.cfg.lake, part, nil)
		if err != nil {
			return err
		}
		p.quarantine = &openFile{w: w}
		p.opened()
	}
	w := p.quarantine.w
	w.Int(lake.QColPartition, int64(p.id))
	w.Int(lake.QColOffset, r.Offset)
	w.Int(lake.QColTimestamp, r.Timestamp.UnixMicro())
	w.String(lake.QColValue, r.Value)
	w.String(lake.QColError, []byte(reason))
	if err := w.EndRow(r.Offset); err != nil {
		return err
	}
	p.quarantined++
	return p.account(nil, p.quarantine)
}

// commit publishes every open file of the partition, then advances its
// checkpoint to the next offset: the one step that makes records count.
func (p *partition) commit(ctx context.Context) error {
	t0 := time.Now()
	defer func() { p.e.cfg.logger.Debug("commit", "partition", p.id, "took", time.Since(t0)) }()
	p.roll = false
	if p.oldest.IsZero() && p.next == p.committed {
		return nil // nothing new
	}
	var files []*openFile
	p.each(func(_ *typeFiles, f *openFile) { files = append(files, f) })
	// Finishing a file is CPU (the last pages) and an fsync: do them side
	// by side, so that the fsyncs share the file system's journal commits.
	errs := make([]error, len(files))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = f.w.Close()
			<-sem
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, f := range append(p.closed, files...) {
		if err := p.publish(f); err != nil {
			return err
		}
	}
	p.closed = nil
	for dir := range p.dirs {
		if err := p.e.cfg.lake.SyncDir(ctx, dir); err != nil {
			return err
		}
	}
	clear(p.dirs)
	p.dropTypes()
	p.quarantine = nil
	p.buffered = 0
	p.oldest = time.Time{}
	p.e.countRecords(p.perType, p.quarantined)
	clear(p.perType)
	p.quarantined = 0

	if err := p.hook(BeforeCheckpoint, lake.Part{Partition: p.id}); err != nil {
		return err
	}
	if err := p.e.advance(ctx, p); err != nil {
		return err
	}
	p.committed = p.next
	return nil
}

// dropTypes forgets the partition's typeFiles, their records counted in
// perType.
func (p *partition) dropTypes() {
	for _, tf := range p.types {
		if tf.records > 0 {
			p.perType[tf.name] += tf.records
		}
	}
	p.types = map[string]*typeFiles{}
}

// abort drops the partition's open and closed files unpublished: the
// next owner of the partition extracts their records again from the
// checkpoint (and removes whatever a failed abort leaves).
func (p *partition) abort() {
	var files []*openFile
	p.each(func(_ *typeFiles, f *openFile) { files = append(files, f) })
	for _, f := range append(p.closed, files...) {
		if err := f.w.Abort(); err != nil {
			p.e.cfg.logger.Warn("drop an unfinished file", "partition", p.id, "err", err)
		}
	}
	p.closed = nil
	p.dropTypes()
	p.quarantine = nil
	p.buffered = 0
	p.oldest = time.Time{}
	p.e.cfg.logger.Info("partition abandoned without a commit", "partition", p.id, "checkpoint", p.committed, "dropped up to", p.next)
}

func (p *partition) hook(pt Point, part lake.Part) error {
	if p.e.cfg.hook == nil {
		return nil
	}
	p.e.hookMu.Lock()
	err := p.e.cfg.hook(pt, p.id, part)
	p.e.hookMu.Unlock()
	if err != nil {
		return fmt.Errorf("stopped at hook: %w", err)
	}
	return nil
}

// envelope finds the event's type and time, and refuses reserved fields.
func envelope(vals []jvalue) (typ []byte, us int64, err error) {
	var haveType, haveTime bool
	for i := 0; i < len(vals); i++ {
		v := &vals[i]
		switch k := unsafeString(v.key); {
		case k == lake.ColEventType:
			if v.kind != jString {
				return nil, 0, errors.New("event_type is not a string")
			}
			// Not retained: an error formats its own copy.
			if err := lake.ValidEventType(unsafeString(v.raw)); err != nil {
				return nil, 0, err
			}
			typ, haveType = v.raw, true
		case k == lake.ColEventTime:
			if v.kind != jString {
				return nil, 0, errors.New("event_time is not a string")
			}
			t, ok := parseTime(v.raw)
			if !ok {
				return nil, 0, fmt.Errorf("event_time %q is not an RFC 3339 time", v.raw)
			}
			us, haveTime = t, true
		case lake.Reserved(k):
			return nil, 0, fmt.Errorf("field %s is reserved for the lake", k)
		case k == "":
			return nil, 0, errors.New("a field has an empty name")
		}
		if v.kind == jObject {
			i = int(v.end) - 1
		}
	}
	switch {
	case !haveType:
		return nil, 0, errors.New("no event_type")
	case !haveTime:
		return nil, 0, errors.New("no event_time")
	}
	return typ, us, nil
}
