package compact_test

import (
	"context"
	"errors"
	"testing"

	"github.com/questlog/questlog/internal/extract/extracttest"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/compact"
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
			want := fillSmallLake(t, extracttest.StartBroker(t), loc, 240, 20)
			st, err := lake.Open(loc)
			if err != nil {
				t.Fatal(err)
			}
			_, print := readersAgreeAt(t, loc, want, "", query.CacheDir(t.TempDir()))
			most, before := filesPerGroupIn(t, st)
			if most < 3 {
				t.Fatalf("at most %d files a group before compacting: the test proves nothing", most)
			}

			// Phase 1: a pass, crashed at tt.point when there is one.
			crash := crashAt(tt.point, tt.nth)
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
			r, _ := readersAgreeAt(t, loc, want, print, query.CacheDir(t.TempDir()))
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
			mostAfter, after := filesPerGroupIn(t, st)
			t.Logf("%d files (at most %d a group) into %d (at most %d)", before, most, after, mostAfter)
			if mostAfter > 2 {
				t.Errorf("after compacting, a group has %d files", mostAfter)
			}
			if r, _ := readersAgreeAt(t, loc, want, print, query.CacheDir(t.TempDir())); r.Replaced != 0 || r.Merging != 0 {
				t.Errorf("after the last pass %d replaced files and %d pending merges are left", r.Replaced, r.Merging)
			}
		})
	}
}
