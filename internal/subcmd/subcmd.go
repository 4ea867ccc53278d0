// Package subcmd is the subcommand frame both hookreg tools (hookgen and the
// migrator) share: dispatch by name, "help" and "CMD --help" with the
// command's usage and flags, flags before or after the positional arguments
// (internal/cliflag), a validate step, then a run step.
//
//	prog := &subcmd.Program[*env]{
//		Name:     "hookgen",
//		Summary:  "hookgen checks an upgrade-hook registry.",
//		Commands: []*subcmd.Spec[*env]{generateCmd, checkCmd},
//	}
//	err := prog.Run(e, stdout, stderr, os.Args[1:])
//	os.Exit(cliflag.ExitCode(err))
package subcmd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
)

// Command is one subcommand: an options struct that declares its flags,
// validates the positional arguments and runs with the program's
// environment E.
type Command[E any] interface {
	Flags(fs *flag.FlagSet)
	Validate(args []string) error
	Run(e E) error
}

// Spec describes a subcommand for dispatch and help.
type Spec[E any] struct {
	Name    string
	Summary string
	// Usage is the full help text: the synopsis, the flags' meaning and an
	// example.
	Usage string
	New   func() Command[E]
	// Hidden keeps an internal command out of the overview.
	Hidden bool
}

// Program is a command with subcommands.
type Program[E any] struct {
	// Name is the program's name, such as "hookgen".
	Name string
	// Summary is the first line of the overview.
	Summary string
	// Commands in the order the overview lists them.
	Commands []*Spec[E]
	// WrapErrors prefixes a command's errors with its name ("plan: ...").
	WrapErrors bool
	// FlagGroups are flags many commands share (the etcd connection):
	// a command's help names each group in one line, and "help NAME"
	// lists its flags once.
	FlagGroups []FlagGroup
}

// FlagGroup is a set of flags, by the prefix of their names, that a
// command's help shows as one line ("--etcd-* ...") and the help topic
// Name lists.
type FlagGroup struct {
	// Name is the help topic ("etcd": "PROG help etcd").
	Name string
	// Prefix selects the flags ("etcd-").
	Prefix string
	// Summary is the one line a command's help shows for the group.
	Summary string
	// Text is the topic's help, before the flags.
	Text string
}

func (p *Program[E]) lookup(name string) *Spec[E] {
	for _, c := range p.Commands {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Run runs the subcommand args[0] with the rest of args. Help goes to
// stdout; the overview after a missing command to stderr. "--version" (or
// "-version") is the command "version" when the program has one, as in
// "hookgen --version". Command-line errors wrap cliflag.ErrUsage.
func (p *Program[E]) Run(e E, stdout, stderr io.Writer, args []string) error {
	if len(args) == 0 {
		p.writeOverview(stderr)
		return cliflag.Usagef("missing command")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		return p.help(stdout, args)
	case "-version", "--version":
		if p.lookup("version") != nil {
			name = "version"
		}
	}
	spec := p.lookup(name)
	if spec == nil {
		return cliflag.Usagef("unknown command %q (run \"%s help\")", name, p.Name)
	}
	cmd := spec.New()
	fs := p.flagSet(spec, cmd)
	pos, err := cliflag.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		p.writeUsage(stdout, spec, fs)
		return nil
	}
	if err == nil {
		err = cmd.Validate(pos)
	}
	if err != nil {
		err = fmt.Errorf("%w (run \"%s help %s\")", err, p.Name, spec.Name)
	} else {
		err = cmd.Run(e)
	}
	if err != nil && p.WrapErrors {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	return err
}

func (p *Program[E]) flagSet(spec *Spec[E], cmd Command[E]) *flag.FlagSet {
	fs := flag.NewFlagSet(p.Name+" "+spec.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.Flags(fs)
	return fs
}

func (p *Program[E]) help(w io.Writer, args []string) error {
	switch len(args) {
	case 0:
		p.writeOverview(w)
		return nil
	case 1:
		if g := p.group(args[0]); g != nil {
			p.writeGroup(w, g)
			return nil
		}
		spec := p.lookup(args[0])
		if spec == nil {
			return cliflag.Usagef("unknown command %q (run \"%s help\")", args[0], p.Name)
		}
		p.writeUsage(w, spec, p.flagSet(spec, spec.New()))
		return nil
	}
	return cliflag.Usagef("help takes at most one command, got %d", len(args))
}

func (p *Program[E]) writeOverview(w io.Writer) {
	width := 0
	for _, c := range p.Commands {
		if !c.Hidden {
			width = max(width, len(c.Name))
		}
	}
	fmt.Fprintf(w, "%s\n\nUsage: %s COMMAND [flags] [args]\n\nCommands:\n", p.Summary, p.Name)
	for _, c := range p.Commands {
		if !c.Hidden {
			fmt.Fprintf(w, "  %-*s %s\n", width+1, c.Name, c.Summary)
		}
	}
	fmt.Fprintf(w, "\nRun \"%s help COMMAND\" or \"%s COMMAND --help\" for a command's flags and an example.\n", p.Name, p.Name)
	for _, g := range p.FlagGroups {
		fmt.Fprintf(w, "Run \"%s help %s\" for the --%s* flags: %s.\n", p.Name, g.Name, g.Prefix, g.Summary)
	}
}

func (p *Program[E]) group(name string) *FlagGroup {
	for i := range p.FlagGroups {
		if p.FlagGroups[i].Name == name {
			return &p.FlagGroups[i]
		}
	}
	return nil
}

// writeUsage writes a command's help: its synopsis and first paragraph,
// then its flags (each group of FlagGroups in one line), then the rest of
// its text (details and examples), so that the flags come early.
func (p *Program[E]) writeUsage(w io.Writer, spec *Spec[E], fs *flag.FlagSet) {
	paras := strings.Split(strings.TrimSpace(spec.Usage), "\n\n")
	head := min(2, len(paras))
	fmt.Fprintf(w, "%s\n", strings.Join(paras[:head], "\n\n"))
	var flags strings.Builder
	groups := map[string]bool{}
	writeFlags(&flags, fs, func(f *flag.Flag) bool {
		for _, g := range p.FlagGroups {
			if strings.HasPrefix(f.Name, g.Prefix) {
				if !groups[g.Name] {
					groups[g.Name] = true
					fmt.Fprintf(&flags, "  --%s*\n    \t%s: see \"%s help %s\"\n", g.Prefix, g.Summary, p.Name, g.Name)
				}
				return false
			}
		}
		return true
	})
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
	}
	if rest := paras[head:]; len(rest) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(rest, "\n\n"))
	}
}

// writeGroup writes the help topic of g: its text and its flags, taken
// from the first command that has them.
func (p *Program[E]) writeGroup(w io.Writer, g *FlagGroup) {
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(g.Text))
	for _, spec := range p.Commands {
		var flags strings.Builder
		writeFlags(&flags, p.flagSet(spec, spec.New()), func(f *flag.Flag) bool { return strings.HasPrefix(f.Name, g.Prefix) })
		if flags.Len() > 0 {
			fmt.Fprintf(w, "\nFlags:\n%s", flags.String())
			return
		}
	}
}

// writeFlags lists the flags of fs that keep selects as the usage texts
// write them, "--name VALUE" (flag.PrintDefaults writes "-name"), each
// with its usage on the next line and its default when it is not the zero
// value.
func writeFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f) {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "false", "0", "0s":
		default:
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// IsTerminal reports whether w is a terminal (a character device): where
// long work shows its progress.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
