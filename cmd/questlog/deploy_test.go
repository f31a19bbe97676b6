package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/questlog/questlog/internal/envflag"
	"github.com/questlog/questlog/internal/lake"
	"github.com/questlog/questlog/internal/lake/s3store"
)

// deployDir holds the Dockerfile and the compose file that run questlog at
// scale (deploy/README.md). No Docker engine runs in the tests: they check
// every questlog command line and variable there against this binary's
// own command tree instead, so that a renamed or mistyped flag fails here
// rather than in someone's cluster.
var deployDir = filepath.Join("..", "..", "deploy")

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
	Profiles []string `yaml:"profiles"`
	Deploy   *struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// isQuestlog says whether the service runs the image deploy/Dockerfile builds.
func (s composeService) isQuestlog() bool {
	return s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile"
}

// interpolation is what compose substitutes in values: ${NAME},
// ${NAME:-default}, ${NAME-default} and $$ (a dollar sign).
var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate substitutes as compose would with none of the variables set:
// each takes its default, so the defaults are what is checked.
func interpolate(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return interpolation.FindStringSubmatch(m)[2]
	})
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for name, s := range c.Services {
		for i, a := range s.Command {
			s.Command[i] = interpolate(a)
		}
		for k, v := range s.Environment {
			s.Environment[k] = interpolate(v)
		}
		c.Services[name] = s
	}
	return c
}

// awsVariables are the AWS_* variables questlog's S3 client reads, as
// s3store.ConfigFromEnv asks for them.
func awsVariables() []string {
	var names []string
	s3store.ConfigFromEnv(func(name string) string {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return ""
	})
	return names
}

// goRuntimeVariables are read by the Go runtime (extract sets its own
// memory limit unless GOMEMLIMIT is given).
var goRuntimeVariables = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC"}

// parseCommandLine finds args' command in a fresh questlog command tree and
// parses its flags as cobra would before running it, without running it.
func parseCommandLine(args []string) (*cobra.Command, error) {
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return nil, err
	}
	if cmd == root || !cmd.Runnable() {
		return nil, fmt.Errorf("no runnable questlog subcommand in %q", args)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return nil, fmt.Errorf("questlog %s: %w", cmd.Name(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return nil, fmt.Errorf("questlog %s: %w", cmd.Name(), err)
	}
	return cmd, nil
}

// flagOfVariable is the flag QUESTLOG_<NAME> sets on cmd, or "" when the
// variable is not one of questlog's.
func flagOfVariable(cmd *cobra.Command, name string) string {
	rest, ok := strings.CutPrefix(name, envflag.Prefix)
	if !ok {
		return ""
	}
	flag := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
	if cmd.Flags().Lookup(flag) == nil || envflag.Name(flag) != name {
		return ""
	}
	return flag
}

// checkEnvironment checks that each variable of env is one questlog or its
// S3 client reads, and binds env to the flags of cmds (the commands that
// will run with env) as questlog does before it runs: each QUESTLOG_
// variable sets its flag unless the command line did, and a value the flag
// refuses is an error.
func checkEnvironment(env map[string]string, cmds []*cobra.Command) error {
	aws := awsVariables()
	for name := range env {
		switch {
		case strings.HasPrefix(name, envflag.Prefix):
			if !slices.ContainsFunc(cmds, func(cmd *cobra.Command) bool { return flagOfVariable(cmd, name) != "" }) {
				return fmt.Errorf("%s: no flag of questlog %s reads it", name, commandNames(cmds))
			}
		case strings.HasPrefix(name, "AWS_"):
			if !slices.Contains(aws, name) {
				return fmt.Errorf("%s: questlog's S3 client reads only %s", name, strings.Join(aws, ", "))
			}
		case slices.Contains(goRuntimeVariables, name):
		default:
			return fmt.Errorf("%s: neither questlog, its S3 client nor the Go runtime reads it", name)
		}
	}
	for _, cmd := range cmds {
		if err := bindEnvironment(cmd, env); err != nil {
			return err
		}
	}
	return nil
}

// bindEnvironment sets cmd's flags from env as envflag.Bind sets them from
// the process's environment.
func bindEnvironment(cmd *cobra.Command, env map[string]string) error {
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	if err := envflag.BindFrom(cmd.Flags(), lookup); err != nil {
		return fmt.Errorf("questlog %s: %w", cmd.Name(), err)
	}
	return nil
}

func commandNames(cmds []*cobra.Command) string {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		names[i] = c.Name()
	}
	return strings.Join(names, ", ")
}

// allCommands are the runnable commands of questlog's tree.
func allCommands() []*cobra.Command {
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() {
			_ = c.ParseFlags(nil) // merges the inherited flags into c.Flags()
			out = append(out, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	return out
}

// effective is what a flag of cmd will be once env is bound (the command
// line's value, else env's QUESTLOG_ variable, else the default).
func effective(t *testing.T, cmd *cobra.Command, env map[string]string, flag string) string {
	t.Helper()
	if err := bindEnvironment(cmd, env); err != nil {
		t.Fatal(err)
	}
	f := cmd.Flags().Lookup(flag)
	if f == nil {
		t.Fatalf("questlog %s has no flag --%s", cmd.Name(), flag)
	}
	return f.Value.String()
}

// checkLocations opens what the command would connect to, without
// connecting: the lake (an s3:// one with the service's AWS_* variables)
// and Redis.
func checkLocations(cmd *cobra.Command, env map[string]string) error {
	if err := bindEnvironment(cmd, env); err != nil {
		return err
	}
	flag := func(name string) string {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	if loc := flag("lake"); strings.HasPrefix(loc, "s3://") {
		// Opening an s3:// lake checks its location, endpoint and
		// credentials' shape; it sends no request.
		if _, err := lake.Open(loc, lake.Getenv(func(name string) string { return env[name] })); err != nil {
			return fmt.Errorf("--lake %s: %w", loc, err)
		}
	}
	if r := flag("redis"); r != "" {
		if _, err := redis.ParseURL(r); err != nil {
			return fmt.Errorf("--redis %s: %w", r, err)
		}
	}
	return nil
}

// Every questlog command line in docker-compose.yml (command and health
// check) names a real subcommand with flags it takes, and every variable
// of its environment is one questlog, its S3 client or the Go runtime
// reads, with a value its flag accepts.
func TestDeployComposeCommandLines(t *testing.T) {
	c := readCompose(t)
	var roles []string
	for name, s := range c.Services {
		if !s.isQuestlog() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if len(s.Entrypoint) > 0 {
				t.Fatalf("entrypoint %q: the image's entrypoint is questlog; give the arguments as command", s.Entrypoint)
			}
			if len(s.Command) > 0 {
				roles = append(roles, s.Command[0])
			}
			cmd, err := parseCommandLine(s.Command)
			if err != nil {
				t.Fatal(err)
			}
			cmds := []*cobra.Command{cmd}
			if slices.Contains(s.Profiles, "tools") {
				// docker compose run tools <any command>: the
				// environment serves every command.
				cmds = allCommands()
			}
			if err := checkEnvironment(s.Environment, cmds); err != nil {
				t.Error(err)
			}
			if err := checkLocations(cmd, s.Environment); err != nil {
				t.Error(err)
			}
			if hc := s.Healthcheck; hc != nil && !hc.Disable && len(hc.Test) > 2 && hc.Test[0] == "CMD" && hc.Test[1] == "questlog" {
				if _, err := parseCommandLine(hc.Test[2:]); err != nil {
					t.Errorf("healthcheck: %v", err)
				}
			}
		})
	}
	for _, want := range []string{"serve", "extract"} {
		if !slices.Contains(roles, want) {
			t.Errorf("no service runs questlog %s (roles: %q)", want, roles)
		}
	}
}

// The compose file's parts agree: nginx balances over the port the servers
// listen on, extract workers do not outnumber the topic's partitions, and
// servers and workers use the same cluster and topic.
func TestDeployComposeIsConsistent(t *testing.T) {
	c := readCompose(t)
	serve, extract := c.Services["serve"], c.Services["extract"]
	serveCmd, err := parseCommandLine(serve.Command)
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(effective(t, serveCmd, serve.Environment, "http"))
	if err != nil {
		t.Fatalf("serve --http: %v", err)
	}
	conf, err := os.ReadFile(filepath.Join(deployDir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*server\s+serve:` + port + `\b`).Match(conf) {
		t.Errorf("nginx.conf has no upstream server serve:%s, where serve --http listens", port)
	}

	partitions, err := strconv.Atoi(effective(t, serveCmd, serve.Environment, "partitions"))
	if err != nil {
		t.Fatal(err)
	}
	if init := strings.Join(c.Services["kafka-init"].Command, " "); !strings.Contains(init, "--partitions "+strconv.Itoa(partitions)) {
		t.Errorf("kafka-init creates the topic with other partitions than serve --partitions %d: %s", partitions, init)
	}
	if extract.Deploy == nil || extract.Deploy.Replicas < 1 || extract.Deploy.Replicas > partitions {
		t.Errorf("extract replicas: want 1..%d (the topic's partitions), have %+v", partitions, extract.Deploy)
	}

	extractCmd, err := parseCommandLine(extract.Command)
	if err != nil {
		t.Skipf("extract's command line does not parse (see TestDeployComposeCommandLines): %v", err)
	}
	for _, flag := range []string{"brokers", "topic"} {
		s, e := effective(t, serveCmd, serve.Environment, flag), effective(t, extractCmd, extract.Environment, flag)
		if s != e || s == "" {
			t.Errorf("--%s: serve has %q, extract %q", flag, s, e)
		}
	}
}

// dockerInstruction is one instruction of a Dockerfile, its continuation
// lines joined.
type dockerInstruction struct{ keyword, args string }

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		keyword, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstruction{strings.ToUpper(keyword), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The Dockerfile runs questlog: its ENTRYPOINT is the binary, its CMD and
// HEALTHCHECK are command lines the binary takes, its ENV variables are
// questlog's, and the health check probes the port the API listens on.
func TestDeployDockerfile(t *testing.T) {
	var entrypoint, command, health []string
	env := map[string]string{}
	runtimeStage := false
	for _, in := range readDockerfile(t) {
		switch in.keyword {
		case "FROM":
			runtimeStage = !strings.Contains(strings.ToUpper(in.args), " AS ")
		case "ENTRYPOINT":
			entrypoint = execForm(t, in)
		case "CMD":
			command = execForm(t, in)
		case "HEALTHCHECK":
			_, probe, ok := strings.Cut(in.args, "CMD ")
			if !ok {
				t.Fatalf("HEALTHCHECK %s: want CMD [...]", in.args)
			}
			health = execForm(t, dockerInstruction{in.keyword, probe})
		case "ENV":
			if !runtimeStage {
				continue
			}
			for _, kv := range strings.Fields(in.args) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("ENV %s: want NAME=value pairs", in.args)
				}
				env[k] = v
			}
		}
	}
	if !slices.Equal(entrypoint, []string{"questlog"}) {
		t.Fatalf("ENTRYPOINT %q, want [\"questlog\"]", entrypoint)
	}
	if _, err := parseCommandLine(command); err != nil {
		t.Errorf("CMD: %v", err)
	}
	if err := checkEnvironment(env, allCommands()); err != nil {
		t.Errorf("ENV: %v", err)
	}
	if len(health) < 2 || health[0] != "questlog" {
		t.Fatalf("HEALTHCHECK CMD %q: want a questlog command line", health)
	}
	probe, err := parseCommandLine(health[1:])
	if err != nil {
		t.Fatalf("HEALTHCHECK: %v", err)
	}
	args := probe.Flags().Args()
	u, err := url.Parse(args[len(args)-1])
	if err != nil || u.Path != "/readyz" {
		t.Errorf("HEALTHCHECK probes %q, want the API's /readyz", args)
	}
	serveCmd, err := parseCommandLine(command)
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(effective(t, serveCmd, env, "http"))
	if err != nil || u.Port() != port {
		t.Errorf("HEALTHCHECK probes port %s; serve listens on %q", u.Port(), effective(t, serveCmd, env, "http"))
	}
}

// execForm reads an instruction's JSON array (exec form).
func execForm(t *testing.T, in dockerInstruction) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(in.args), &args); err != nil {
		t.Fatalf("%s %s: want the exec form, a JSON array: %v", in.keyword, in.args, err)
	}
	return args
}

// The checks above catch what they are for: a command line or variable
// that questlog does not take fails them.
func TestDeployChecksRefuseWrongLines(t *testing.T) {
	lines := []struct {
		name string
		args []string
	}{
		{"unknown subcommand", []string{"serv", "--http=0.0.0.0:5000"}},
		{"unknown flag", []string{"serve", "--listen", "0.0.0.0:5000"}},
		{"flag of another command", []string{"extract", "--redis", "redis://redis:6379/0"}},
		{"bad value", []string{"serve", "--partitions", "six"}},
		{"stray argument", []string{"serve", "extra"}},
		{"no subcommand", nil},
		{"a command group alone", []string{"lake"}},
	}
	for _, tt := range lines {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseCommandLine(tt.args); err == nil {
				t.Errorf("questlog %q parsed", tt.args)
			}
		})
	}
	serve, err := parseCommandLine([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	envs := []struct {
		name string
		env  map[string]string
	}{
		{"unknown QUESTLOG_ variable", map[string]string{"QUESTLOG_LISTEN": "0.0.0.0:5000"}},
		{"another command's flag", map[string]string{"QUESTLOG_GROUP": "g"}},
		{"bad value", map[string]string{"QUESTLOG_PARTITIONS": "six"}},
		{"AWS variable the client does not read", map[string]string{"AWS_S3_ENDPOINT": "http://minio:9000"}},
		{"other variable", map[string]string{"KAFKA_BROKERS": "k:9092"}},
	}
	for _, tt := range envs {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkEnvironment(tt.env, []*cobra.Command{serve}); err == nil {
				t.Errorf("environment %v passed", tt.env)
			}
		})
	}
	extract, err := parseCommandLine([]string{"extract", "--lake", "s3://questlog/lake"})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLocations(extract, map[string]string{"AWS_ENDPOINT_URL_S3": "minio:9000"}); err == nil {
		t.Error("an S3 endpoint without a scheme passed")
	}
	if got := interpolate(`a ${X:-b} $${Y} ${Z}`); got != "a b ${Y} " {
		t.Errorf("interpolate = %q", got)
	}
}

// The checks see a flag as questlog will: the command line wins over the
// environment, which wins over the default.
func TestDeployChecksBindAsQuestlogDoes(t *testing.T) {
	env := map[string]string{"QUESTLOG_HTTP": "0.0.0.0:6000", "QUESTLOG_TOPIC": "from-env"}
	serve, err := parseCommandLine([]string{"serve", "--http", "0.0.0.0:5000"})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkEnvironment(env, []*cobra.Command{serve}); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"http": "0.0.0.0:5000", "topic": "from-env", "partitions": "4"} {
		if got := effective(t, serve, env, flag); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
}
