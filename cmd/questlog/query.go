package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/peterh/liner"
	"github.com/questlog/questlog/internal/query"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newQueryCmd(g *globalOptions) *cobra.Command {
	var format string
	var lf lakeFlags
	cmd := &cobra.Command{
		Use:   "query [SQL]",
		Short: "Run SQL over the lake",
		Long: `Run SQL over the lake with DuckDB.

Views: events (every event type), one per event type (buy_item, join_guild,
signup, ...), quarantine, and events_item (buy/sell/cart/checkout),
events_guild (join/leave), events_user (signup/login/logout). A view whose
event type has no files yet is empty.

With no SQL, statements are read from the terminal at an interactive prompt
with history, or from standard input when it is not a terminal.`,
		Example: `  questlog query "SELECT item_type, quality, count(*) FROM buy_item GROUP BY ALL"
  questlog query --format csv "SELECT * FROM events_user" > users.csv
  questlog query`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := query.ParseFormat(format)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if err := lakeExists(g.lakeLocation()); err != nil {
				return err
			}
			db, err := query.Open(ctx, g.lakeLocation(), lf.query()...)
			if err != nil {
				return err
			}
			defer db.Close()
			out := cmd.OutOrStdout()
			if len(args) > 0 {
				res, err := db.Query(ctx, strings.Join(args, " "))
				if err != nil {
					return err
				}
				return res.Write(out, f)
			}
			sh := &query.Shell{DB: db, Out: out, Err: cmd.ErrOrStderr(), Format: f}
			if !term.IsTerminal(int(os.Stdin.Fd())) {
				sh.StopOnError = true
				in := bufio.NewReader(cmd.InOrStdin())
				return sh.Run(ctx, func(string) (string, error) {
					line, err := in.ReadString('\n')
					if errors.Is(err, io.EOF) && line != "" {
						return line, nil
					}
					return strings.TrimSuffix(line, "\n"), err
				})
			}
			return interactive(cmd, sh)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, csv or json")
	lf.registerCache(cmd.Flags())
	return cmd
}

// interactive runs the shell at a line-editing prompt whose history is kept
// in ~/.questlog_history.
func interactive(cmd *cobra.Command, sh *query.Shell) error {
	line := liner.NewLiner()
	defer line.Close()
	line.SetCtrlCAborts(true)
	history := ""
	if home, err := os.UserHomeDir(); err == nil {
		history = filepath.Join(home, ".questlog_history")
		if f, err := os.Open(history); err == nil {
			_, _ = line.ReadHistory(f)
			f.Close()
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "questlog query over %s: statements end with ';', .help for help, Ctrl-D to leave\n", sh.DB.Lake())
	err := sh.Run(cmd.Context(), func(prompt string) (string, error) {
		s, err := line.Prompt(prompt)
		if errors.Is(err, liner.ErrPromptAborted) {
			return "", query.ErrInterrupted
		}
		if err == nil && strings.TrimSpace(s) != "" {
			line.AppendHistory(s)
		}
		return s, err
	})
	if history != "" {
		if f, ferr := os.OpenFile(history, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); ferr == nil {
			_, _ = line.WriteHistory(f)
			f.Close()
		}
	}
	return err
}

// lakeExists refuses a lake directory that is not there: a mistyped --lake
// would otherwise answer every query with empty views.
func lakeExists(location string) error {
	if strings.Contains(location, "://") {
		return nil
	}
	if _, err := os.Stat(location); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no lake at %s (run questlog extract, or check --lake and --data-dir)", location)
	}
	return nil
}
