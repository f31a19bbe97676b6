package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newLoadCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "load",
		Short: "Drive load against the API",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("load: not built yet")
		},
	}
}
