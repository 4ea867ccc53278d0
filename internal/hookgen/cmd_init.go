package hookgen

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	modsemver "golang.org/x/mod/semver"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/gen"
)

const (
	flagProduct  = "product"
	flagRelease  = "release"
	flagMigrator = "migrator"
	flagStores   = "stores"
)

// The layout hookgen init writes, relative to the module root.
const (
	initRegistry  = "registry.yaml"
	initHooks     = "hooks"
	initGenerated = "generated"
	// defaultRelease is the release of a module without one: Go's first
	// version of a new module.
	defaultRelease  = "0.1.0"
	defaultMigrator = "cmd/migrator"
	// defaultStores are the store backends of the migrator main: the
	// embedded bbolt store only. The etcd cluster store adds about 160
	// packages (etcd client, gRPC, protobuf) and 15 go.mod requirements
	// that a product on bbolt never uses (docs/decisions.md); a migrator without
	// it refuses an etcd:// store naming the import line that adds it.
	defaultStores = "bolt"
	// etcdBackend is the package whose import links the etcd cluster
	// store into a migrator.
	etcdBackend = modulePath + "/migrator/etcdstore"
	// hookgenTool is the tool line init adds to go.mod.
	hookgenTool = modulePath + "/cmd/hookgen"
	// generateDirective is the go:generate line of the hook package, in two
	// parts so that go generate does not take this file's line for one.
	generateDirective = "//go" + ":generate go tool hookgen generate"
)

var initCmd = &spec{
	Name:    "init",
	Summary: "set up hookreg in a module: registry.yaml, hooks/, generated/, a migrator main",
	Usage: `
Usage: hookgen init [--product NAME] [--release V] [--migrator DIR] [--stores bolt|bolt,etcd]

Init sets up an upgrade-hook registry in the Go module of the working
directory, at its root:

	registry.yaml              product NAME (default: the module path), release V
	                           (default 0.1.0), package ./hooks, no hooks yet
	hooks/doc.go               the hook package, with "//go:generate go tool hookgen generate"
	generated/registry.go      the generated registry (and generated/hooks.sum)
	DIR/main.go                the product's migrator (default cmd/migrator): three
	                           lines passing generated.Registry to migrator.Main, and
	                           with --stores bolt,etcd the import of the etcd store
	go.mod                     "tool github.com/hookreg/hookreg/cmd/hookgen" (and the
	                           requirement on github.com/hookreg/hookreg when missing)

--stores names the store backends the migrator links. bbolt, the embedded
store, is always built in; "bolt,etcd" adds the etcd cluster store with the
line

	import _ "github.com/hookreg/hookreg/migrator/etcdstore"

The default is bolt: the etcd store links about 160 more packages (etcd
client, gRPC, protobuf), makes the migrator about 1.8 times as large (25 MB
against 13) and adds 15 requirements to go.mod, all of it unused by a
product on bbolt.
A migrator without it refuses an etcd:// store, saying which line to add.

It refuses, writing nothing, when registry.yaml or any of these files
exists. Every file it writes is gofmt-clean and passes go vet and hookgen
check once "go mod tidy" has filled go.sum.

Example, in a new module:

	$ go mod init example.com/broker
	$ go get -tool github.com/hookreg/hookreg/cmd/hookgen
	$ go tool hookgen init --product broker --release 1.0.0
	hookgen: wrote registry.yaml, hooks/doc.go, generated/hooks.sum, generated/registry.go, cmd/migrator/main.go
	hookgen: next: "go mod tidy", then "go tool hookgen new NAME" for the first hook
	$ go mod tidy
`,
	New: func() command { return &initOptions{} },
}

// initOptions are the options of hookgen init.
type initOptions struct {
	product  string
	release  string
	migrator string
	stores   string
	etcd     bool // --stores has etcd
}

func (o *initOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.product, flagProduct, "", "the product `NAME` backups carry (default: the module path)")
	fs.StringVar(&o.release, flagRelease, defaultRelease, "the release `V` this tree builds")
	fs.StringVar(&o.migrator, flagMigrator, defaultMigrator, "the `DIR` of the migrator main, relative to the module root")
	fs.StringVar(&o.stores, flagStores, defaultStores, "the store backends the migrator links, a comma-separated `LIST`: bolt (built in) or bolt,etcd (adds the etcd cluster store)")
}

func (o *initOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	if _, err := semver.StrictNewVersion(o.release); err != nil {
		return cliflag.Usagef("--%s %q is not a semantic version MAJOR.MINOR.PATCH: %v", flagRelease, o.release, err)
	}
	if strings.ContainsAny(o.product, "\n\r\t") {
		return cliflag.Usagef("--%s %q holds a control character", flagProduct, o.product)
	}
	dir := filepath.ToSlash(filepath.Clean(o.migrator))
	if filepath.IsAbs(o.migrator) || dir == "." || dir == ".." || strings.HasPrefix(dir, "../") {
		return cliflag.Usagef("--%s %q is not a directory below the module root", flagMigrator, o.migrator)
	}
	if err := module.CheckImportPath("example.com/" + dir); err != nil {
		return cliflag.Usagef("--%s %q is not a valid package directory: %v", flagMigrator, o.migrator, err)
	}
	o.migrator = dir
	bolt := false
	for _, s := range strings.Split(o.stores, ",") {
		switch strings.TrimSpace(s) {
		case "bolt":
			bolt = true
		case "etcd":
			o.etcd = true
		default:
			return cliflag.Usagef("--%s %q: unknown store %q: want bolt or bolt,etcd", flagStores, o.stores, strings.TrimSpace(s))
		}
	}
	if !bolt {
		return cliflag.Usagef("--%s %q: bolt, the embedded store, is built into every migrator: want bolt or bolt,etcd", flagStores, o.stores)
	}
	return nil
}

// initFile is a file init writes, by slash path relative to the module root.
type initFile struct {
	name string
	data []byte
}

func (o *initOptions) Run(e *env) error {
	wd, err := os.Getwd()
	if err != nil {
		return cliflag.Env(fmt.Errorf("finding the working directory: %w", err))
	}
	root, err := findModuleRoot(wd)
	if err != nil {
		return err
	}
	modPath := filepath.Join(root, "go.mod")
	modData, err := os.ReadFile(modPath)
	if err != nil {
		return cliflag.Env(fmt.Errorf("reading go.mod: %w", err))
	}
	mod, err := modfile.Parse(modPath, modData, nil)
	if err != nil {
		return cliflag.Env(fmt.Errorf("reading go.mod: %w", err))
	}
	if mod.Module == nil {
		return cliflag.Env(fmt.Errorf("reading go.mod: %s has no module line", modPath))
	}
	if _, err := os.Stat(filepath.Join(root, initRegistry)); err == nil {
		return fmt.Errorf("%s exists already: this module has a registry; add a hook with \"hookgen new NAME\"", displayPath(wd, filepath.Join(root, initRegistry)))
	}
	files, err := o.files(mod.Module.Mod.Path)
	if err != nil {
		return err
	}
	var exist []string
	for _, f := range files {
		_, err := os.Stat(filepath.Join(root, filepath.FromSlash(f.name)))
		if err == nil {
			exist = append(exist, f.name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return cliflag.Env(fmt.Errorf("initializing: %w", err))
		}
	}
	if len(exist) > 0 {
		return fmt.Errorf("initializing: %s exists already: nothing written; move it away or set up the registry by hand", strings.Join(exist, ", "))
	}
	newMod, err := addTool(mod)
	if err != nil {
		return err
	}
	names, err := writeInit(root, files, modPath, newMod)
	if err != nil {
		return fmt.Errorf("initializing: %w", err)
	}
	fmt.Fprintf(e.stderr, "hookgen: wrote %s\n", strings.Join(names, ", "))
	if newMod != nil {
		fmt.Fprintf(e.stderr, "hookgen: added \"tool %s\" to go.mod\n", hookgenTool)
	}
	fmt.Fprintf(e.stderr, "hookgen: next: \"go mod tidy\", then \"go tool hookgen new NAME\" for the first hook\n")
	return nil
}

// writeInit writes files below root, then go.mod when newMod is not nil,
// and returns the names of the files. On an error it removes the files it
// wrote, leaving the module as it was.
func writeInit(root string, files []initFile, modPath string, newMod []byte) (names []string, err error) {
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, f.data, 0o644); err != nil {
			return nil, err
		}
		written = append(written, path)
		names = append(names, f.name)
	}
	if newMod != nil {
		if err := atomicfile.Write(modPath, newMod, 0o644); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// files returns the files init writes for the module modPath, in order.
func (o *initOptions) files(modPath string) ([]initFile, error) {
	product := cmp.Or(o.product, modPath)
	reg := fmt.Sprintf(`# The upgrade hooks of %[1]s, newest first.
# A hook never changes once it has landed: add new hooks on top with
# "go tool hookgen new NAME", then run "go generate ./...";
# "go tool hookgen lint" checks this file against git history.
product: %[2]s  # backups of another product are refused
release: %[3]s  # the release this tree builds
package: ./%[4]s  # the Go package of the hook functions
hooks: []
`, product, yamlString(product), o.release, initHooks)
	doc, err := format.Source(fmt.Appendf(nil, `// Package hooks holds the upgrade hooks of the product
// %s: one exported function per hook, with the
// signature of hook.Func, declared in registry.yaml at the module root.
// "go tool hookgen new NAME" adds one; "go generate ./..." regenerates the
// registry in generated/.
package hooks

%s
`, product, generateDirective))
	if err != nil {
		return nil, fmt.Errorf("writing the hook package: %w", err)
	}
	generated, err := gen.Generate(gen.Input{Package: initGenerated, Source: initRegistry, Product: product, Release: o.release})
	if err != nil {
		return nil, err
	}
	stores, etcdImport := "It takes bbolt stores; importing\n// %[5]s adds the etcd cluster store.", ""
	if o.etcd {
		stores, etcdImport = "It takes bbolt stores and, through the import of\n// %[5]s, etcd cluster stores.", "_ %[5]q // the etcd cluster store"
	}
	main, err := format.Source(fmt.Appendf(nil, `// Command %[1]s backs up, restores and upgrades the store of the
// product %[2]s with its upgrade hooks. Run "%[1]s help"
// for the commands. `+stores+`
package main

import (
	"os"

	%[3]q
	%[4]q
	`+etcdImport+`
)

func main() {
	os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
`, path.Base(o.migrator), product, path.Join(modPath, initGenerated), modulePath+"/migrator", etcdBackend))
	if err != nil {
		return nil, fmt.Errorf("writing the migrator main: %w", err)
	}
	files := []initFile{{initRegistry, []byte(reg)}, {initHooks + "/doc.go", doc}}
	for _, name := range sortedNames(generated) {
		files = append(files, initFile{initGenerated + "/" + name, generated[name]})
	}
	return append(files, initFile{o.migrator + "/main.go", main}), nil
}

// yamlString returns s as a YAML scalar: plain when that reads back as the
// same string, else double-quoted.
func yamlString(s string) string {
	plain := s != "" && !strings.ContainsAny(s, ":#'\"{}[],&*!|>%@`") &&
		strings.TrimSpace(s) == s && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "?")
	if plain {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// addTool returns go.mod with hookgen as a tool of the module, as
// "go mod edit -tool" writes it, and a requirement on the hookreg module at
// the version this hookgen was built from when go.mod has none; nil when
// go.mod already has both.
func addTool(mod *modfile.File) ([]byte, error) {
	changed := false
	required := false
	for _, r := range mod.Require {
		required = required || r.Mod.Path == modulePath
	}
	if !required {
		r, dep := buildVersion()
		v := r.Version
		if !dep || r.Replace != "" || !modsemver.IsValid(v) {
			return nil, cliflag.Env(fmt.Errorf("go.mod does not require %s, and this hookgen (%s) is not a released version to require: run \"go get -tool %s\" first", modulePath, v, hookgenTool))
		}
		if err := mod.AddRequire(modulePath, v); err != nil {
			return nil, fmt.Errorf("editing go.mod: %w", err)
		}
		changed = true
	}
	hasTool := false
	for _, t := range mod.Tool {
		hasTool = hasTool || t.Path == hookgenTool
	}
	if !hasTool {
		if err := mod.AddTool(hookgenTool); err != nil {
			return nil, fmt.Errorf("editing go.mod: %w", err)
		}
		changed = true
	}
	if !changed {
		return nil, nil
	}
	mod.Cleanup()
	out, err := mod.Format()
	if err != nil {
		return nil, fmt.Errorf("editing go.mod: %w", err)
	}
	return out, nil
}
