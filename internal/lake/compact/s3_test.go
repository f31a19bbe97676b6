package compact_test

import (
	"context"
	"errors"
	"testing"

	"github.com/questlog/questlog/internal/extract"
	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
	"github.com/questlog/questlog/internal/lake/laketest"
	"github.com/questlog/questlog/internal/lake/s3store/s3test"
	"github.com/questlog/questlog/internal/query"
)

// TestS3CompactionOnMotoServer compacts a lake of small files in a bucket
// of a real S3-compatible server (moto_server), whole and crashed at each
// step of a merge then finished by the next pass: lake check and the
// query views (DuckDB reading local copies) count every record once, with
// the same fingerprint as before, and the next pass leaves one or two
// files a group and no replaced file. (The local lake's tests crash at
// more points; these are the two that differ on a bucket: an upload that
// never happened, and a merge published but not cleaned up.)
func TestS3CompactionOnMotoServer(t *testing.T) {
	srv := s3test.Start(t)
	tests := []struct {
		name  string
		point compact.Point // 0: no crash
		nth   int
	}{
		{"whole pass", 0, 0},
		{"crash with a merged file written, not uploaded", compact.Written, 1},
		{"crash with a merged file published, one of its inputs removed", compact.Removed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			loc := srv.NewBucket(t)
			want := s3SmallLake(t, loc, 240)
			st, err := lake.Open(loc)
			if err != nil {
				t.Fatal(err)
			}
			_, print := s3ReadersAgree(t, loc, want, "")
			most, before := s3FilesPerGroup(t, st)
			if most < 3 {
				t.Fatalf("at most %d files a group before compacting: the test proves nothing", most)
			}

			// Phase 1: a pass, crashed at tt.point when there is one.
			n := 0
			crash := compact.WithHook(func(p compact.Point, _ lake.Part) error {
				if p == tt.point {
					if n++; n == tt.nth {
						return errCrash
					}
				}
				return nil
			})
			c, err := compact.New(st, compact.Clock(afterwards), compact.Grace(0), crash)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := c.Compact(ctx)
			if tt.point == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if len(sum.Merges) == 0 || sum.Removed != sum.Files() {
					t.Errorf("%d merges, %d of %d merged files removed", len(sum.Merges), sum.Removed, sum.Files())
				}
			} else if !errors.Is(err, errCrash) {
				t.Fatalf("compaction: %v, want the simulated crash", err)
			}

			// Phase 2: questlog's readers count every record once. An
			// object is uploaded whole at its commit: no pending merge is
			// ever seen in a bucket.
			r, _ := s3ReadersAgree(t, loc, want, print)
			if r.Merging != 0 {
				t.Errorf("%d pending merged files in a bucket", r.Merging)
			}
			if tt.point == compact.Removed {
				if r.Replaced == 0 {
					t.Error("no replaced file after a crash before removing them all")
				}
			}

			// Phase 3: the next pass finishes the job.
			c, err = compact.New(st, compact.Clock(afterwards), compact.Grace(0))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			mostAfter, after := s3FilesPerGroup(t, st)
			t.Logf("%d files (at most %d a group) into %d (at most %d)", before, most, after, mostAfter)
			if mostAfter > 2 {
				t.Errorf("after compacting, a group has %d files", mostAfter)
			}
			if r, _ := s3ReadersAgree(t, loc, want, print); r.Replaced != 0 || r.Merging != 0 {
				t.Errorf("after the last pass %d replaced files and %d pending merges are left", r.Replaced, r.Merging)
			}
		})
	}
}

// s3SmallLake fills the lake at loc as smallLake does a folder: small
// files (a commit every 15 rows) in rounds, a type's schema widened
// between them.
func s3SmallLake(t *testing.T, loc string, events int) *extracttest.Produced {
	t.Helper()
	addr := extracttest.StartBroker(t)
	var want *extracttest.Produced
	for r, round := range questRounds {
		var quests [][]byte
		for i := range 20 {
			quests = append(quests, round(i))
		}
		p := extracttest.Produce(t, addr, laketest.Config{Events: events / len(questRounds), Seed: uint64(r + 1)}, nil, quests...)
		p.PerType["quest_done"] += int64(len(quests))
		if want == nil {
			want = p
		} else {
			want.Add(p)
		}
		if _, err := extracttest.NewExtractor(t, addr, loc, extract.MaxRows(15)).Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

// s3ReadersAgree checks that lake check and the query views each count
// every record once, and that the events view's fingerprint is print
// (when not empty); it returns lake check's report and the fingerprint.
func s3ReadersAgree(t *testing.T, loc string, want *extracttest.Produced, print string) (*lake.Report, string) {
	t.Helper()
	r := extracttest.CheckLake(t, loc)
	extracttest.SameCounts(t, "lake check", r.Rows, want.PerType)
	db, err := query.Open(context.Background(), loc, query.CacheDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]int64{}
	for typ := range want.PerType {
		got[typ] = count(t, db, `SELECT count(*) FROM "`+typ+`"`)
	}
	extracttest.SameCounts(t, "query's views", got, want.PerType)
	now := fingerprintOf(t, db)
	if print != "" && now != print {
		t.Errorf("the events view's fingerprint is %s, was %s", now, print)
	}
	return r, now
}

// s3FilesPerGroup is the most files a group of the lake has in its
// effective set, and the files of the effective set.
func s3FilesPerGroup(t *testing.T, st lake.Storage) (most, files int) {
	t.Helper()
	l, err := lake.ListData(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	n := map[lake.Group]int{}
	for _, f := range l.Events() {
		n[f.Group()]++
		most = max(most, n[f.Group()])
	}
	return most, len(l.Events())
}
