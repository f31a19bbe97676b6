package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/questlog/questlog/internal/query"
)

// WriteFile builds the report of the lake at location over w and writes it
// to path as one HTML file. The file appears whole or not at all: a failed
// run leaves what was there before. opts open the lake (query.Open's: the
// cache of an s3:// lake).
func WriteFile(ctx context.Context, location, path string, w Window, now time.Time, opts ...query.Option) (*Report, error) {
	if !w.Since.IsZero() && !w.Until.IsZero() && !w.Since.Before(w.Until) {
		return nil, fmt.Errorf("report window: since %s is not before until %s", w.Since.Format(time.RFC3339), w.Until.Format(time.RFC3339))
	}
	db, err := query.Open(ctx, location, append(opts[:len(opts):len(opts)], query.WithoutViews())...)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	r, err := Build(ctx, db, w, now)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("write report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("write report %s: %w", path, err)
	}
	return r, nil
}
