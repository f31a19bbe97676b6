// Command questlog is a game-event analytics pipeline in one binary: a game
// API that logs every request as an event on a Kafka topic, an extract job
// that turns the topic into a Parquet lake, SQL and reports over the lake,
// and a load generator.
//
// This package only parses flags and wires the internal packages together;
// every behaviour worth testing lives under internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		var exit exitError
		if errors.As(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintln(os.Stderr, "questlog:", exit.msg)
			}
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "questlog:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a given code, for commands whose exit status
// carries meaning (a failed lake check, a load test over its error budget).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }
