package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newServeCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the game API",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("serve: not built yet")
		},
	}
}
