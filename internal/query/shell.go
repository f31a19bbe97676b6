package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInterrupted is what a Shell's line reader returns when the user pressed
// Ctrl-C: the statement being typed is dropped and the shell goes on.
var ErrInterrupted = errors.New("interrupted")

// Shell is the interactive prompt of `questlog query`: it reads statements
// (ended by ';') and dot commands, and prints each result or DuckDB's error.
type Shell struct {
	DB     *DB
	Out    io.Writer // results
	Err    io.Writer // errors, which never end the shell
	Format Format
	// StopOnError ends Run at the first failing statement, returning its
	// error: for statements piped in by a script rather than typed.
	StopOnError bool
}

const shellHelp = `Statements end with ';' and may span lines. Views: %s.
  .tables        list the views
  .format F      print results as table, csv or json
  .refresh       pick up event types and columns that arrived since the start
  .help          this text
  .quit          leave (or Ctrl-D)
`

// Run reads lines with readLine until it returns io.EOF or ctx ends. The
// prompt it is given tells a new statement from a continued one.
func (s *Shell) Run(ctx context.Context, readLine func(prompt string) (string, error)) error {
	var stmt strings.Builder
	for ctx.Err() == nil {
		prompt := "questlog> "
		if stmt.Len() > 0 {
			prompt = "     ...> "
		}
		line, err := readLine(prompt)
		switch {
		case errors.Is(err, ErrInterrupted):
			stmt.Reset()
			continue
		case errors.Is(err, io.EOF):
			if strings.TrimSpace(stmt.String()) != "" {
				return s.run(ctx, stmt.String())
			}
			return nil
		case err != nil:
			return fmt.Errorf("read statement: %w", err)
		}
		trimmed := strings.TrimSpace(line)
		if stmt.Len() == 0 && strings.HasPrefix(trimmed, ".") {
			if quit := s.command(ctx, trimmed); quit {
				return nil
			}
			continue
		}
		if stmt.Len() == 0 && trimmed == "" {
			continue
		}
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			err := s.run(ctx, stmt.String())
			stmt.Reset()
			if err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// run runs one statement; its error is returned only with StopOnError.
func (s *Shell) run(ctx context.Context, q string) error {
	res, err := s.DB.Query(ctx, q)
	if err == nil {
		err = res.Write(s.Out, s.Format)
	}
	if err != nil && s.StopOnError {
		return err
	}
	if err != nil {
		fmt.Fprintln(s.Err, err)
	}
	return nil
}

// command runs a dot command and reports whether the shell should end.
func (s *Shell) command(ctx context.Context, line string) bool {
	name, arg, _ := strings.Cut(line, " ")
	switch name {
	case ".quit", ".exit", ".q":
		return true
	case ".tables":
		fmt.Fprintln(s.Out, strings.Join(s.DB.Views(), "  "))
	case ".format":
		f, err := ParseFormat(strings.TrimSpace(arg))
		if err != nil {
			fmt.Fprintln(s.Err, err)
			break
		}
		s.Format = f
	case ".refresh":
		if err := s.DB.Refresh(ctx); err != nil {
			fmt.Fprintln(s.Err, err)
		}
	case ".help":
		fmt.Fprintf(s.Out, shellHelp, strings.Join(s.DB.Views(), ", "))
	default:
		fmt.Fprintf(s.Err, "unknown command %s (try .help)\n", name)
	}
	return false
}
