package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newQueryCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "query",
		Short: "Run SQL over the lake",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("query: not built yet")
		},
	}
}
