package migrator

import (
	"flag"
	"fmt"
	"runtime/debug"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
)

func init() {
	register(&spec{
		Name:    "version",
		Summary: "print the release, product, registry digest and hooks",
		Usage: `
Usage: {{.Prog}} version [--json]
       {{.Prog}} --version [--json]

Prints the release this migrator upgrades to, the product, the registry
digest and every hook (number, version, online or offline, code digest,
name). With --json, one JSON object that also holds the store backends
the migrator links ("stores": ["bolt"], with "etcd" when its main package
imports github.com/hookreg/hookreg/migrator/etcdstore), and the VCS commit
and the Go version of the build when the binary records them.

Example:

	$ {{.Prog}} --version
	{{.Prog}} {{.Release}}, product {{.Product}}, registry h1:Qm9v...
`,
		New: func() command { return &versionOptions{} },
	})
}

type versionOptions struct {
	json bool
}

func (o *versionOptions) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
}

func (o *versionOptions) Validate(args []string) error {
	return cliflag.Exactly(args)
}

// versionReport is the output of version --json.
type versionReport struct {
	Release        string        `json:"release"`
	Product        string        `json:"product"`
	RegistryDigest string        `json:"registry_digest"`
	MinDataVersion string        `json:"min_data_version,omitempty"`
	Stores         []string      `json:"stores"`
	Commit         string        `json:"commit,omitempty"`
	GoVersion      string        `json:"go_version,omitempty"`
	Hooks          []versionHook `json:"hooks"`
}

type versionHook struct {
	Num          int    `json:"num"`
	IntroducedIn string `json:"introduced_in"`
	AllowOnline  bool   `json:"allow_online"`
	Name         string `json:"name"`
	Digest       string `json:"digest"`
}

func (o *versionOptions) Run(e *env) error {
	r := versionReport{
		Release:        e.reg.Release,
		Product:        e.reg.Product,
		RegistryDigest: e.reg.Digest,
		MinDataVersion: e.reg.MinDataVersion,
		Stores:         []string{"bolt"},
		Hooks:          []versionHook{},
	}
	if b := cluster.Registered(); b != nil {
		r.Stores = append(r.Stores, b.Name())
	}
	if r.RegistryDigest == "" {
		r.RegistryDigest = e.reg.ComputeDigest()
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		r.GoVersion = info.GoVersion
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				r.Commit = s.Value
			}
		}
	}
	for _, h := range e.reg.Hooks {
		r.Hooks = append(r.Hooks, versionHook{Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Name, Digest: h.Digest})
	}
	if o.json {
		return writeJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "%s %s, product %s, registry %s\n", e.prog, r.Release, r.Product, r.RegistryDigest)
	for _, h := range r.Hooks {
		mode := "offline"
		if h.AllowOnline {
			mode = "online"
		}
		fmt.Fprintf(e.stdout, "  hook %3d  %-6s %-7s  %s  %s\n", h.Num, h.IntroducedIn, mode, h.Digest, h.Name)
	}
	return nil
}
