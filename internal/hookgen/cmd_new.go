package hookgen

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/registry"
)

const (
	flagOnline      = "online"
	flagVersion     = "version"
	flagMaintenance = "maintenance"
)

var newCmd = &spec{
	Name:    "new",
	Summary: "add a hook on top of registry.yaml, with a function and a test stub",
	Usage: `
Usage: hookgen new [--online] [--version V] [--maintenance] [--registry FILE] NAME

New adds hook NAME on top of registry.yaml with the next number, keeping the
file's comments and layout, and writes a function stub with the hook
signature and a test stub, which runs the hook as the migrator does with
package github.com/hookreg/hookreg/hooktest and fails until the hook and
its test are written. NAME is a
function of the hook package ("UpgradeSessions") or of a sub-package
("libsess.UpgradeSessions"). The hook is introduced in the release unless
--version says otherwise; --online lets it run on a live store.

On a maintenance branch (a patch release of an older line, after main has
hooks of later releases), --maintenance adds a maintenance hook: marked
maintenance: true and numbered in its line's range (hook 1 of line 2.16 is
1002016001), so that it never collides with main's numbers; it needs a
patch release and --online. Main carries it by merging the branch.

Example:

	$ hookgen new --online libsess.UpgradeSessions
	hookgen: added hook 101 libsess.UpgradeSessions (5.1.0, online) to registry.yaml
	hookgen: wrote hooks/libsess/upgradesessions.go and hooks/libsess/upgradesessions_test.go
	$ go generate ./...
`,
	New: func() command { return &newOptions{} },
}

// newOptions are the options of hookgen new.
type newOptions struct {
	registry    registryFlag
	online      bool
	version     string
	maintenance bool
	name        string
}

func (o *newOptions) Flags(fs *flag.FlagSet) {
	o.registry.flags(fs)
	fs.BoolVar(&o.online, flagOnline, false, "allow the hook to run on a live store")
	fs.StringVar(&o.version, flagVersion, "", "the release `V` that introduces the hook (default: the registry's release)")
	fs.BoolVar(&o.maintenance, flagMaintenance, false, "a hook of a maintenance branch: numbered in the range of its version's line")
}

func (o *newOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args, "NAME"); err != nil {
		return err
	}
	o.name = args[0]
	_, name := registry.SplitFunc(o.name)
	if !registry.ValidFunc(o.name) || !token.IsExported(name) {
		return cliflag.Usagef("NAME %q is not an exported function name such as UpgradeSessions or libsess.UpgradeSessions", o.name)
	}
	if o.version != "" {
		if _, err := semver.StrictNewVersion(o.version); err != nil {
			return cliflag.Usagef("--%s %q is not a semantic version MAJOR.MINOR.PATCH: %v", flagVersion, o.version, err)
		}
	}
	return nil
}

func (o *newOptions) Run(e *env) error {
	c, ds, err := readRegistry(o.registry)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		if err := diag.Write(e.stderr, "text", ds); err != nil {
			return fmt.Errorf("writing diagnostics: %w", err)
		}
		return fmt.Errorf("%s has findings: fix them before adding a hook: %w", c.file, errFindings)
	}
	h, err := o.newHook(c.reg)
	if err != nil {
		return err
	}
	sub, name := registry.SplitFunc(h.Func)
	dir := filepath.Join(c.moduleDir, filepath.FromSlash(c.reg.Package), filepath.FromSlash(sub))
	pkgName, err := packageNameIn(dir, sub)
	if err != nil {
		return err
	}
	base := strings.ToLower(name)
	funcCode, err := stubFunc(pkgName, name, h)
	if err != nil {
		return err
	}
	testCode, err := stubTest(pkgName, name, h)
	if err != nil {
		return err
	}
	files := []struct {
		path string
		code []byte
	}{
		{filepath.Join(dir, base+".go"), funcCode},
		{filepath.Join(dir, base+"_test.go"), testCode},
	}
	for _, f := range files {
		if _, err := os.Stat(f.path); err == nil {
			return fmt.Errorf("adding hook %d: %s exists already; choose another name", h.Num, f.path)
		}
	}
	data, err := os.ReadFile(c.file)
	if err != nil {
		return cliflag.Env(fmt.Errorf("reading the registry: %w", err))
	}
	edited, err := registry.InsertHook(data, h)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("adding hook %d: %w", h.Num, err)
	}
	for _, f := range files {
		if err := atomicfile.Write(f.path, f.code, 0o644); err != nil {
			return fmt.Errorf("adding hook %d: %w", h.Num, err)
		}
	}
	if err := atomicfile.Write(c.file, edited, 0o644); err != nil {
		return fmt.Errorf("adding hook %d: %w", h.Num, err)
	}
	mode := "offline"
	if h.AllowOnline {
		mode = "online"
	}
	fmt.Fprintf(e.stderr, "hookgen: added hook %d %s (%s, %s) to %s\n", h.Num, h.Func, h.IntroducedIn, mode, c.file)
	wd, _ := os.Getwd()
	fmt.Fprintf(e.stderr, "hookgen: wrote %s and %s; write the hook and its test, then run \"go generate ./...\"\n", displayPath(wd, files[0].path), displayPath(wd, files[1].path))
	return nil
}

// newHook returns the hook to add: the next number, the version (default:
// the release), refusing what the registry rules would refuse.
func (o *newOptions) newHook(f *registry.File) (registry.NewHook, error) {
	h := registry.NewHook{Num: 1, IntroducedIn: cmp.Or(o.version, f.Release), AllowOnline: o.online, Func: o.name, Maintenance: o.maintenance}
	v, err := semver.StrictNewVersion(h.IntroducedIn)
	if err != nil {
		return h, fmt.Errorf("adding hook: version %q: %w", h.IntroducedIn, err)
	}
	if o.maintenance {
		if v.Patch() == 0 || v.Major() > hook.MaxLine || v.Minor() > hook.MaxLine {
			return h, cliflag.Usagef("--%s: a maintenance hook belongs to a patch release (MAJOR.MINOR.PATCH, PATCH > 0), not %s", flagMaintenance, h.IntroducedIn)
		}
		h.Num = hook.MaintenanceNum(int(v.Major()), int(v.Minor()), 1)
	}
	for _, old := range f.Hooks {
		if hook.IsMaintenance(old.Num) == o.maintenance && (!o.maintenance || hook.LineName(old.Num) == hook.LineName(h.Num)) {
			h.Num = max(h.Num, old.Num+1)
		}
		if old.Func == o.name {
			return h, fmt.Errorf("adding hook: %s is already hook %d", o.name, old.Num)
		}
	}
	release, err := semver.StrictNewVersion(f.Release)
	if err == nil && v.GreaterThan(release) {
		return h, cliflag.Usagef("--%s %s is newer than the release %s of %s", flagVersion, h.IntroducedIn, f.Release, f.Path)
	}
	if len(f.Hooks) > 0 && f.Hooks[0].Version != nil && v.LessThan(f.Hooks[0].Version) {
		return h, cliflag.Usagef("--%s %s is older than the newest hook's %s; versions do not increase down the file", flagVersion, h.IntroducedIn, f.Hooks[0].IntroducedIn)
	}
	if v.Patch() > 0 && !o.online {
		return h, cliflag.Usagef("hook %d is introduced in patch release %s: hooks of patch releases must run online; add --%s", h.Num, h.IntroducedIn, flagOnline)
	}
	return h, nil
}

// packageNameIn returns the package name of the Go files in dir, or, for a
// new directory, the name the sub-package path sub suggests.
func packageNameIn(dir, sub string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", cliflag.Env(fmt.Errorf("reading the hook package: %w", err))
	}
	for _, ent := range entries {
		if name := ent.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.PackageClauseOnly)
			if err != nil {
				return "", fmt.Errorf("reading the hook package: %w", err)
			}
			return f.Name.Name, nil
		}
	}
	name := path.Base(sub)
	if sub == "" {
		name = filepath.Base(dir)
	}
	name = strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "").Replace(name))
	if !token.IsIdentifier(name) || token.IsKeyword(name) {
		return "", fmt.Errorf("adding hook: directory %s suggests no package name; create the package first", dir)
	}
	return name, nil
}
