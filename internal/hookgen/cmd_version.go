package hookgen

import (
	"encoding/json"
	"flag"
	"fmt"
	"runtime/debug"

	"github.com/hookreg/hookreg/internal/cliflag"
)

// modulePath is the module hookgen belongs to: what an adopting module
// requires, and the module whose version "hookgen version" reports.
const modulePath = "github.com/hookreg/hookreg"

const flagJSON = "json"

var versionCmd = &spec{
	Name:    "version",
	Summary: "print the version of hookgen (also: hookgen --version)",
	Usage: `
Usage: hookgen version [--json]
       hookgen --version [--json]

Prints the version of the hookreg module this hookgen was built from, as Go
records it in the binary: a module version (v1.2.0) when it was built as a
dependency ("go tool hookgen" in a module that requires hookreg), "(devel)"
for a build from a checkout, with the directory of a replace when there is
one, the VCS commit when the build stamped it, and the Go version. With
--json, one JSON object.

Example:

	$ go tool hookgen version
	hookgen v1.2.0, module github.com/hookreg/hookreg, go1.26.8
`,
	New: func() command { return &versionOptions{} },
}

// versionOptions are the options of hookgen version.
type versionOptions struct {
	json bool
}

func (o *versionOptions) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
}

func (o *versionOptions) Validate(args []string) error {
	return cliflag.Exactly(args)
}

// versionReport is the output of hookgen version --json.
type versionReport struct {
	Version   string `json:"version"`
	Module    string `json:"module"`
	Replace   string `json:"replace,omitempty"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
}

func (o *versionOptions) Run(e *env) error {
	r, _ := buildVersion()
	if o.json {
		out, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", out)
		return err
	}
	fmt.Fprintf(e.stdout, "hookgen %s, module %s", r.Version, r.Module)
	if r.Replace != "" {
		fmt.Fprintf(e.stdout, " => %s", r.Replace)
	}
	if r.Commit != "" {
		fmt.Fprintf(e.stdout, ", commit %s", r.Commit)
	}
	_, err := fmt.Fprintf(e.stdout, ", %s\n", r.GoVersion)
	return err
}

// buildVersion reads the version of the hookreg module from the build
// information of the running binary: the main module when hookgen is built
// in a checkout of hookreg, else the dependency (then dep is true).
func buildVersion() (r versionReport, dep bool) {
	r = versionReport{Version: "(unknown)", Module: modulePath}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return r, false
	}
	r.GoVersion = info.GoVersion
	mod := &info.Main
	if mod.Path != modulePath {
		mod = nil
		for _, d := range info.Deps {
			if d.Path == modulePath {
				mod = d
			}
		}
	}
	if mod == nil {
		return r, false
	}
	r.Version = mod.Version
	if mod.Replace != nil {
		r.Replace = mod.Replace.Path
		if mod.Replace.Version != "" {
			r.Replace += " " + mod.Replace.Version
		}
	}
	if mod != &info.Main {
		return r, true
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			r.Commit = s.Value
		}
	}
	return r, false
}
