package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBrokerCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka broker alone",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("broker: not built yet")
		},
	}
}
