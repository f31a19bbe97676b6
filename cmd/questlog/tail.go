package main

import (
	"bufio"
	"github.com/spf13/cobra"

	"github.com/questlog/questlog/internal/event"
	"github.com/questlog/questlog/internal/stream"
)

func newTailCmd(g *globalOptions) *cobra.Command {
	var (
		offset    string
		exitAtEnd bool
		typ       string
		user      string
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the topic's events, one JSON object per line (like kcat -C)",
		Long: `tail reads the event topic like kcat -C: from -o beginning, end (the
default) or an absolute offset in every partition, following new events until
Ctrl-C, or with -e exiting once it reached the end the topic had when it
started. --type and --user keep only matching events.

It connects to --brokers, or to the embedded broker at --broker-listen
(started by up, serve or broker); it never starts a broker itself.`,
		Example: `  questlog tail -o beginning -e
  questlog tail --type buy_item --user ada`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start, err := stream.ParseStart(offset)
			if err != nil {
				return err
			}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			return stream.Tail(cmd.Context(), stream.TailConfig{
				Brokers: g.brokerList(), Topic: g.topic, Start: start, ExitAtEnd: exitAtEnd,
			}, func(r stream.Record) error {
				if typ != "" || user != "" {
					h, err := event.DecodeHeader(r.Value)
					if err != nil || (typ != "" && h.Type != typ) || (user != "" && h.User != user) {
						return nil
					}
				}
				if _, err := out.Write(r.Value); err != nil {
					return err
				}
				if err := out.WriteByte('\n'); err != nil {
					return err
				}
				if !exitAtEnd {
					return out.Flush() // following: show each event as it comes
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&offset, "offset", "o", "end", "where to start in each partition: beginning, end or an offset")
	f.BoolVarP(&exitAtEnd, "exit", "e", false, "exit at the end of the topic instead of following it")
	f.StringVar(&typ, "type", "", "only events of this event_type")
	f.StringVar(&user, "user", "", "only events of this user")
	return cmd
}
