package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/questlog/questlog/internal/lake"
)

func newLakeCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lake",
		Short: "Verify and compact the lake",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newLakeCompactCmd(g))
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Verify that the lake holds every record of the topic exactly once",
		Long: `check reads the lake's checkpoint and every file, and verifies that each
offset of each partition, from the partition's start (the log start offset the
extract recorded when it first read the partition: above 0 if retention had
deleted older records) up to the checkpoint, is in exactly one events or
quarantine file; that every file opens, holds the partition and offsets its
name says, and has the columns of the schema version it records in
_schemas/<type>.json; and that no two files of an event type, day and
partition overlap without one holding the other's whole range. Files a merged
file replaced are not read (a compaction removes them after its grace period),
and a merge in progress is no problem. Offsets of the days --lake-retention
dropped are not missing: each dropped day's manifest (lake/_retention/) lists
its files, their offsets and rows, and exactly that many offsets of their ranges
must be in no file; one more is a loss. A day being dropped is not read. Records
the embedded broker deleted (--topic-retention) after the lake held them are no
gap either: the lake does not need the topic. It exits with status 1 and lists
what is wrong otherwise.

It reads only the lake: no broker is needed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLakeCheck(cmd.Context(), g, cmd.OutOrStdout())
		},
	})
	return cmd
}

func runLakeCheck(ctx context.Context, g *globalOptions, w io.Writer) error {
	st, err := lake.Open(g.lakeLocation())
	if err != nil {
		return err
	}
	r, err := lake.Check(ctx, st, g.topic)
	if err != nil {
		return err
	}
	if r.Checkpoint != nil {
		fmt.Fprintf(w, "checkpoint  %s\n", r.Checkpoint)
	}
	fmt.Fprintf(w, "files       %d\n", r.Files)
	if r.Replaced > 0 || r.Merging > 0 {
		fmt.Fprintf(w, "replaced    %d (merged into other files, not read; removed after the grace period)\nmerging     %d\n", r.Replaced, r.Merging)
	}
	var total int64
	for _, t := range r.Types() {
		fmt.Fprintf(w, "  %-20s %10d\n", t, r.Rows[t])
		total += r.Rows[t]
	}
	fmt.Fprintf(w, "events      %d\nquarantined %d\n", total, r.Quarantined)
	if len(r.DroppedDays) > 0 {
		fmt.Fprintf(w, "dropped     %d records of %d days (%s to %s) by --lake-retention\n",
			r.Dropped, len(r.DroppedDays), r.DroppedDays[0], r.DroppedDays[len(r.DroppedDays)-1])
		if r.Retired > 0 {
			fmt.Fprintf(w, "retired     %d files of dropped days, not read (removed after the grace period)\n", r.Retired)
		}
	}
	if r.OK() {
		if len(r.DroppedDays) > 0 {
			fmt.Fprintln(w, "ok: every offset up to the checkpoint is in the lake exactly once, or in a day dropped by retention")
			return nil
		}
		fmt.Fprintln(w, "ok: every offset up to the checkpoint is in the lake exactly once")
		return nil
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p)
	}
	return exitError{code: 1, msg: fmt.Sprintf("lake check: %d problems in %s", len(r.Problems), g.lakeLocation())}
}
