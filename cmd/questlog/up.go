package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newUpCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "up",
		Short: "Run everything: broker, state, API, extract, dashboard",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("up: not built yet")
		},
	}
}
