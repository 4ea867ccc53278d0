package subcmd

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/cliflag"
)

type greet struct {
	loud bool
	name string
}

func (g *greet) Flags(fs *flag.FlagSet) { fs.BoolVar(&g.loud, "loud", false, "shout") }

func (g *greet) Validate(args []string) error {
	if err := cliflag.Exactly(args, "NAME"); err != nil {
		return err
	}
	g.name = args[0]
	return nil
}

func (g *greet) Run(out *strings.Builder) error {
	if g.name == "nobody" {
		return errors.New("nobody to greet")
	}
	msg := "hello " + g.name
	if g.loud {
		msg = strings.ToUpper(msg)
	}
	fmt.Fprintln(out, msg)
	return nil
}

func program(wrap bool) *Program[*strings.Builder] {
	return &Program[*strings.Builder]{
		Name:    "tool",
		Summary: "tool greets.",
		Commands: []*Spec[*strings.Builder]{
			{Name: "greet", Summary: "say hello", Usage: "Usage: tool greet [--loud] NAME\n", New: func() Command[*strings.Builder] { return &greet{} }},
			{Name: "secret", Summary: "hidden", Hidden: true, New: func() Command[*strings.Builder] { return &greet{} }},
		},
		WrapErrors: wrap,
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		wrap           bool
		out, stdout    string
		err            string
		code           int
		stderrContains string
	}{
		{args: []string{"greet", "bob", "--loud"}, out: "HELLO BOB\n"},
		{args: []string{"greet", "nobody"}, err: "nobody to greet", code: 1},
		{args: []string{"greet", "nobody"}, wrap: true, err: "greet: nobody to greet", code: 1},
		{args: []string{"greet"}, err: `missing argument NAME (run "tool help greet")`, code: 2},
		{args: []string{"greet", "--nope", "x"}, err: "unknown flag --nope (run \"tool help greet\")", code: 2},
		{args: []string{"wave"}, err: `unknown command "wave" (run "tool help")`, code: 2},
		{args: nil, err: "missing command", code: 2, stderrContains: "  greet  say hello\n"},
		{args: []string{"help"}, stdout: "tool greets.\n\nUsage: tool COMMAND [flags] [args]\n\nCommands:\n  greet  say hello\n\nRun \"tool help COMMAND\" or \"tool COMMAND --help\" for a command's flags and an example.\n"},
		{args: []string{"greet", "--help"}, stdout: "Usage: tool greet [--loud] NAME\n\nFlags:\n  --loud\n    \tshout\n"},
		{args: []string{"help", "greet"}, stdout: "Usage: tool greet [--loud] NAME\n\nFlags:\n  --loud\n    \tshout\n"},
		{args: []string{"help", "a", "b"}, err: "help takes at most one command, got 2", code: 2},
	} {
		var out, stdout, stderr strings.Builder
		err := program(tc.wrap).Run(&out, &stdout, &stderr, tc.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err || cliflag.ExitCode(err) != tc.code {
			t.Errorf("%q: error %q (exit %d), want %q (exit %d)", tc.args, got, cliflag.ExitCode(err), tc.err, tc.code)
		}
		if out.String() != tc.out || stdout.String() != tc.stdout {
			t.Errorf("%q: out %q, stdout %q; want %q, %q", tc.args, out.String(), stdout.String(), tc.out, tc.stdout)
		}
		if !strings.Contains(stderr.String(), tc.stderrContains) {
			t.Errorf("%q: stderr %q does not contain %q", tc.args, stderr.String(), tc.stderrContains)
		}
	}
}

func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil:                   0,
		errors.New("refused"): 1,
		cliflag.Usagef("bad"): 2,
		fmt.Errorf("x: %w", cliflag.Env(errors.New("no file"))): 2,
	} {
		if got := cliflag.ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
	if cliflag.Env(nil) != nil {
		t.Error("Env(nil) != nil")
	}
}

type version struct{ json bool }

func (v *version) Flags(fs *flag.FlagSet)       { fs.BoolVar(&v.json, "json", false, "as JSON") }
func (v *version) Validate(args []string) error { return cliflag.Exactly(args) }
func (v *version) Run(out *strings.Builder) error {
	if v.json {
		fmt.Fprintln(out, `{"version":"1.0.0"}`)
		return nil
	}
	fmt.Fprintln(out, "tool 1.0.0")
	return nil
}

// TestVersionFlag: "--version" and "-version" run the command "version",
// with its flags, when the program has one, and are unknown commands
// otherwise.
func TestVersionFlag(t *testing.T) {
	withVersion := program(false)
	withVersion.Commands = append(withVersion.Commands, &Spec[*strings.Builder]{
		Name: "version", Summary: "print the version", New: func() Command[*strings.Builder] { return &version{} },
	})
	for _, tc := range []struct {
		prog *Program[*strings.Builder]
		args []string
		out  string
		err  string
	}{
		{withVersion, []string{"--version"}, "tool 1.0.0\n", ""},
		{withVersion, []string{"-version", "--json"}, "{\"version\":\"1.0.0\"}\n", ""},
		{withVersion, []string{"version"}, "tool 1.0.0\n", ""},
		{withVersion, []string{"--version", "x"}, "", `unexpected argument "x" (run "tool help version")`},
		{program(false), []string{"--version"}, "", `unknown command "--version" (run "tool help")`},
	} {
		var out, stdout, stderr strings.Builder
		err := tc.prog.Run(&out, &stdout, &stderr, tc.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err || out.String() != tc.out {
			t.Errorf("%q: out %q, error %q; want %q, %q", tc.args, out.String(), got, tc.out, tc.err)
		}
	}
}

// connect has flags of a group, "net-".
type connect struct{ greet }

func (c *connect) Flags(fs *flag.FlagSet) {
	c.greet.Flags(fs)
	fs.String("net-host", "", "the `HOST`")
	fs.Duration("net-timeout", 0, "the `DURATION`")
}

// TestUsageLayout: a command's help is its synopsis and first paragraph,
// its flags (a group's in one line), then the rest of its text; "help
// GROUP" lists the group's flags once, and the overview names the topic.
func TestUsageLayout(t *testing.T) {
	p := &Program[*strings.Builder]{
		Name: "tool",
		Commands: []*Spec[*strings.Builder]{{
			Name:  "connect",
			Usage: "Usage: tool connect NAME\n\nConnects.\n\nDetails.\n\nExample:\n\n\t$ tool connect x\n",
			New:   func() Command[*strings.Builder] { return &connect{} },
		}},
		FlagGroups: []FlagGroup{{Name: "net", Prefix: "net-", Summary: "the network", Text: "Usage: tool COMMAND [--net-* flags]"}},
	}
	var stdout strings.Builder
	if err := p.Run(nil, &stdout, &stdout, []string{"help", "connect"}); err != nil {
		t.Fatal(err)
	}
	want := "Usage: tool connect NAME\n\nConnects.\n\nFlags:\n" +
		"  --loud\n    \tshout\n" +
		"  --net-*\n    \tthe network: see \"tool help net\"\n" +
		"\nDetails.\n\nExample:\n\n\t$ tool connect x\n"
	if got := stdout.String(); got != want {
		t.Errorf("help connect:\n%s\nwant:\n%s", got, want)
	}
	stdout.Reset()
	if err := p.Run(nil, &stdout, &stdout, []string{"help", "net"}); err != nil {
		t.Fatal(err)
	}
	want = "Usage: tool COMMAND [--net-* flags]\n\nFlags:\n  --net-host HOST\n    \tthe HOST\n  --net-timeout DURATION\n    \tthe DURATION\n"
	if got := stdout.String(); got != want {
		t.Errorf("help net:\n%s\nwant:\n%s", got, want)
	}
	stdout.Reset()
	if err := p.Run(nil, &stdout, &stdout, []string{"help"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), `Run "tool help net" for the --net-* flags: the network.`) {
		t.Errorf("the overview does not name the topic:\n%s", stdout.String())
	}
}
