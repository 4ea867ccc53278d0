package hookgen

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/diag"
)

// Flag names shared by several commands.
const (
	flagRegistry = "registry"
	flagFormat   = "format"
)

// registryFlag is the --registry option: the registry.yaml to read.
type registryFlag struct{ path string }

func (r *registryFlag) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.path, flagRegistry, "", "the registry `FILE` (default: registry.yaml at the module root)")
}

// resolve returns the registry file to read, as a path relative to the
// working directory when it lies below it (for diagnostics), and the module
// directory it belongs to.
func (r *registryFlag) resolve() (file, moduleDir string, err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", "", cliflag.Env(fmt.Errorf("finding the working directory: %w", err))
	}
	if r.path != "" {
		abs := r.path
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(wd, abs)
		}
		moduleDir, err = findModuleRoot(filepath.Dir(abs))
		if err != nil {
			return "", "", err
		}
		return r.path, moduleDir, nil
	}
	moduleDir, err = findModuleRoot(wd)
	if err != nil {
		return "", "", err
	}
	return displayPath(wd, filepath.Join(moduleDir, "registry.yaml")), moduleDir, nil
}

// findModuleRoot walks up from dir to the nearest directory holding go.mod.
func findModuleRoot(dir string) (string, error) {
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", cliflag.Env(fmt.Errorf("finding the module root: %w", err))
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", cliflag.Env(fmt.Errorf("finding the module root: no go.mod in %s or any parent directory", dir))
		}
		d = parent
	}
}

// displayPath returns path relative to wd when that is shorter and does not
// climb more than two levels, else path itself.
func displayPath(wd, path string) string {
	rel, err := filepath.Rel(wd, path)
	if err != nil || strings.HasPrefix(rel, filepath.Join("..", "..", "..")) {
		return path
	}
	return rel
}

// formatFlag is the --format option of the commands that print diagnostics.
type formatFlag struct{ format string }

func (f *formatFlag) flags(fs *flag.FlagSet) {
	fs.StringVar(&f.format, flagFormat, "text", "diagnostics format: text, json or github")
}

func (f *formatFlag) validate() error {
	if !diag.ValidFormat(f.format) {
		return cliflag.Usagef("--%s %q: want one of %s", flagFormat, f.format, strings.Join(diag.Formats, ", "))
	}
	return nil
}

// report writes ds in the chosen format and returns errFindings when there
// are any: text goes to stderr like go vet's, json and github to stdout for
// the machines that read them.
func (f *formatFlag) report(e *env, ds []diag.Diagnostic) error {
	if len(ds) == 0 {
		return nil
	}
	w := e.stdout
	if f.format == "text" {
		w = e.stderr
	}
	if err := diag.Write(w, f.format, ds); err != nil {
		return fmt.Errorf("writing diagnostics: %w", err)
	}
	return errFindings
}
