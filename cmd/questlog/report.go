package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newReportCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "report",
		Short: "Write an HTML report with charts",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("report: not built yet")
		},
	}
}
