package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newLakeCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "lake",
		Short: "Inspect and verify the lake",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("lake: not built yet")
		},
	}
}
