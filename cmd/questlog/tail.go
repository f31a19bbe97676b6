package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newTailCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "tail",
		Short: "Print the topic's events, like kcat",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("tail: not built yet")
		},
	}
}
