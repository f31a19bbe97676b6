package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newExtractCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "extract",
		Short: "Extract the topic into the Parquet lake",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("extract: not built yet")
		},
	}
}
