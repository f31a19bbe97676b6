package envflag_test

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/questlog/questlog/internal/envflag"
)

// Every flag reads QUESTLOG_<NAME>; the command line wins.
func TestBind(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want map[string]string
		err  bool
	}{
		{"env sets", map[string]string{"QUESTLOG_BROKERS": "k1:9092,k2:9092", "QUESTLOG_DATA_DIR": "/tmp/x"}, nil,
			map[string]string{"brokers": "k1:9092,k2:9092", "data-dir": "/tmp/x"}, false},
		{"flag wins", map[string]string{"QUESTLOG_TOPIC": "from-env"}, []string{"--topic", "from-flag"},
			map[string]string{"topic": "from-flag"}, false},
		{"default stays", nil, nil, map[string]string{"topic": "events"}, false},
		{"bad value", map[string]string{"QUESTLOG_STARTING_GOLD": "lots"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			fs.String("brokers", "", "")
			fs.String("data-dir", "./questlog-data", "")
			fs.String("topic", "events", "")
			fs.Int64("starting-gold", 1000, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := envflag.Bind(fs)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			for k, v := range tt.want {
				if got, _ := fs.GetString(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
