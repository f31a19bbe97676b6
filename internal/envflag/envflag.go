// Package envflag sets the flags that the command line did not from
// QUESTLOG_<NAME> environment variables, so that the environment configures
// a deployment and the command line still wins.
package envflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Prefix starts every variable's name.
const Prefix = "QUESTLOG_"

// Name is the variable of a flag: --data-dir is QUESTLOG_DATA_DIR.
func Name(flag string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Bind sets every flag of fs not given on the command line from its
// variable, when that is set. A value the flag refuses is an error naming
// the variable.
func Bind(fs *pflag.FlagSet) error { return BindFrom(fs, os.LookupEnv) }

// BindFrom is Bind with the variables lookup finds instead of the
// process's environment (a deployment's, when checking one).
func BindFrom(fs *pflag.FlagSet, lookup func(name string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := Name(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("environment %s: %w", name, serr)
		}
	})
	return err
}
