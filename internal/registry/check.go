package registry

import (
	"fmt"
	"go/token"
	"path"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/diag"
)

// Rule ids of Check: the rules of a well-formed registry.
const (
	RuleNumPositive    = "num-positive"
	RuleNumUnique      = "num-unique"
	RuleNumOrder       = "num-order"
	RuleVersionSyntax  = "version-syntax"
	RuleVersionOrder   = "version-order"
	RuleVersionRelease = "version-release"
	RuleMinDataVersion = "min-data-version"
	RulePatchOnline    = "patch-online"
	RuleFuncSyntax     = "func-syntax"
	RuleFuncUnique     = "func-unique"
	RulePackagePath    = "package-path"
	RuleProduct        = "product"
	RuleMaintenance    = "maintenance"
)

// Check applies the rules of a registry to f and returns every finding,
// each with its own rule id:
//
//   - num-positive: num is a positive integer;
//   - num-unique: no two hooks share a num;
//   - num-order: num strictly decreases down the file, among main's hooks;
//     and among the maintenance hooks of each line;
//   - maintenance: a hook marked maintenance: true is of a patch release
//     (PATCH > 0) and numbered in the range of its introduced_in's line
//     (hook.MaintenanceNum: 1002016001 is hook 1 of line 2.16); a hook
//     not marked so is numbered below that range (hook.MaintenanceBase).
//     A maintenance hook stands where its introduced_in places it
//     (version-order holds for every hook), outside main's num-order;
//   - version-syntax: release, min_data_version and introduced_in are
//     strict semantic versions (no "v" prefix, three numbers);
//   - version-order: introduced_in does not increase down the file;
//   - version-release: no introduced_in is newer than the release;
//   - min-data-version: min_data_version is not newer than the release;
//   - patch-online: a hook of a patch release (patch > 0) has
//     allow_online: true, so that patch upgrades can always run hot;
//   - func-syntax: func is NAME or PKG.NAME, PKG a slash-separated path
//     below the hook package; func-unique: no function is two hooks;
//   - package-path: package is a relative path inside the module (from its root);
//   - product: product, when given, is not empty.
//
// Values the parser could not read (reported by Parse) are skipped here.
// That the functions exist and have the hook signature is checked with
// type information by LoadFuncs.
func Check(f *File) []diag.Diagnostic {
	c := &checker{f: f}
	c.file()
	c.hooks()
	return c.ds
}

type checker struct {
	f  *File
	ds []diag.Diagnostic
}

func (c *checker) errorf(pos diag.Position, rule string, hook int, format string, args ...any) {
	c.ds = append(c.ds, diag.Diagnostic{Pos: pos, Rule: rule, Hook: hook, Message: fmt.Sprintf(format, args...)})
}

// version parses a version of the file, reporting a syntax error.
func (c *checker) version(what, v string, pos diag.Position, hook int) *semver.Version {
	if pos.Line == 0 {
		return nil
	}
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		hint := ""
		if strings.HasPrefix(v, "v") {
			hint = fmt.Sprintf(" (write %q)", strings.TrimPrefix(v, "v"))
		}
		c.errorf(pos, RuleVersionSyntax, hook, "%s %q is not a semantic version MAJOR.MINOR.PATCH%s: %v", what, v, hint, err)
		return nil
	}
	return sv
}

func (c *checker) file() {
	f := c.f
	if f.ProductPos.Line > 0 && strings.TrimSpace(f.Product) == "" {
		c.errorf(f.ProductPos, RuleProduct, 0, "product is empty: name the product, or leave the key out for the module path")
	}
	if f.PackagePos.Line > 0 {
		if cleaned := path.Clean(f.Package); path.IsAbs(f.Package) || cleaned == ".." || strings.HasPrefix(cleaned, "../") || strings.Contains(f.Package, `\`) {
			c.errorf(f.PackagePos, RulePackagePath, 0, "package %q is not a relative path inside the module, such as \"./hooks\"", f.Package)
		}
	}
	release := c.version("release", f.Release, f.ReleasePos, 0)
	minData := c.version("min_data_version", f.MinDataVersion, f.MinDataVersionPos, 0)
	if release != nil && minData != nil && minData.GreaterThan(release) {
		c.errorf(f.MinDataVersionPos, RuleMinDataVersion, 0, "min_data_version %q is newer than release %q", f.MinDataVersion, f.Release)
	}
}

func (c *checker) hooks() {
	f := c.f
	release, _ := semver.StrictNewVersion(f.Release)
	firstNum := make(map[int]*Hook, len(f.Hooks))
	firstFunc := make(map[string]*Hook, len(f.Hooks))
	var prevNum, prevVersion *Hook
	prevLine := make(map[string]*Hook) // the maintenance hook above, by line
	for i := range f.Hooks {
		h := &f.Hooks[i]
		c.maintenance(h)
		if h.NumPos.Line > 0 && h.Num <= 0 {
			c.errorf(h.NumPos, RuleNumPositive, 0, "num %d is not a positive integer", h.Num)
		} else if h.NumPos.Line > 0 {
			if first, ok := firstNum[h.Num]; ok {
				c.errorf(h.NumPos, RuleNumUnique, h.Num, "num %d is already the number of the hook at line %d; give this hook the next free number", h.Num, first.NumPos.Line)
			} else {
				firstNum[h.Num] = h
			}
			if h.Maintenance {
				line := hook.LineName(h.Num)
				if prev := prevLine[line]; prev != nil && h.Num > prev.Num {
					c.errorf(h.NumPos, RuleNumOrder, h.Num, "num %d is larger than the num %d of line %s above it (line %d); the numbers of a maintenance line decrease down the file", h.Num, prev.Num, line, prev.NumPos.Line)
				}
				prevLine[line] = h
			} else {
				if prevNum != nil && h.Num > prevNum.Num {
					c.errorf(h.NumPos, RuleNumOrder, h.Num, "num %d is larger than the num %d above it (line %d); numbers decrease down the file: add new hooks at the top", h.Num, prevNum.Num, prevNum.NumPos.Line)
				}
				prevNum = h
			}
		}
		v := c.version("introduced_in", h.IntroducedIn, h.IntroducedInPos, h.Num)
		if v != nil {
			if prevVersion != nil && v.GreaterThan(prevVersion.Version) {
				c.errorf(h.IntroducedInPos, RuleVersionOrder, h.Num, "introduced_in %q is newer than the %q above it (line %d); versions do not increase down the file", h.IntroducedIn, prevVersion.IntroducedIn, prevVersion.IntroducedInPos.Line)
			}
			prevVersion = h
			h.Version = v
			if release != nil && v.GreaterThan(release) {
				c.errorf(h.IntroducedInPos, RuleVersionRelease, h.Num, "introduced_in %q is newer than release %q; raise the release or introduce the hook in %q", h.IntroducedIn, f.Release, f.Release)
			}
			if v.Patch() > 0 && h.AllowOnlinePos.Line > 0 && !h.AllowOnline {
				c.errorf(h.AllowOnlinePos, RulePatchOnline, h.Num, "the hook of patch release %q has allow_online: false; hooks of patch releases must run online (allow_online: true), or belong in a minor release", h.IntroducedIn)
			}
		}
		if h.FuncPos.Line > 0 {
			if !ValidFunc(h.Func) {
				c.errorf(h.FuncPos, RuleFuncSyntax, h.Num, "func %q is not NAME or PKG.NAME (such as \"UpgradeUsers\" or \"libfoo.UpgradeUsers\")", h.Func)
			} else if first, ok := firstFunc[h.Func]; ok {
				c.errorf(h.FuncPos, RuleFuncUnique, h.Num, "func %q is already hook %d (line %d); every hook has its own function", h.Func, first.Num, first.FuncPos.Line)
			} else {
				firstFunc[h.Func] = h
			}
		}
	}
}

// maintenance checks the numbering of maintenance and main hooks.
func (c *checker) maintenance(h *Hook) {
	if h.NumPos.Line == 0 || h.Num <= 0 {
		return
	}
	if !h.Maintenance {
		if hook.IsMaintenance(h.Num) {
			c.errorf(h.NumPos, RuleMaintenance, h.Num, "num %d is in the range of maintenance hooks (from %d): a hook of a maintenance branch says maintenance: true; a hook of main takes main's next number", h.Num, hook.MaintenanceBase)
		}
		return
	}
	v, err := semver.StrictNewVersion(h.IntroducedIn)
	if h.IntroducedInPos.Line == 0 || err != nil {
		return // reported by the version rules
	}
	if v.Patch() == 0 || v.Prerelease() != "" {
		c.errorf(h.IntroducedInPos, RuleMaintenance, h.Num, "the maintenance hook is introduced in %q: a maintenance line ships patch releases (MAJOR.MINOR.PATCH, PATCH > 0); a hook of a minor release is main's", h.IntroducedIn)
		return
	}
	if v.Major() > hook.MaxLine || v.Minor() > hook.MaxLine {
		c.errorf(h.IntroducedInPos, RuleMaintenance, h.Num, "maintenance lines are numbered up to %d.%d; %q is beyond", hook.MaxLine, hook.MaxLine, h.IntroducedIn)
		return
	}
	major, minor := int(v.Major()), int(v.Minor())
	first, last := hook.MaintenanceNum(major, minor, 1), hook.MaintenanceNum(major, minor, hook.MaxLineHooks)
	if h.Num < first || h.Num > last {
		c.errorf(h.NumPos, RuleMaintenance, h.Num, "num %d is not in the range of maintenance line %d.%d (%d to %d): number the line's hooks from %d, so that they never collide with main's or another line's", h.Num, major, minor, first, last, first)
	}
}

// SplitFunc splits a func value into the sub-package path below the hook
// package ("" for the hook package itself) and the function name.
func SplitFunc(fn string) (pkg, name string) {
	if i := strings.LastIndexByte(fn, '.'); i >= 0 {
		return fn[:i], fn[i+1:]
	}
	return "", fn
}

// ValidFunc reports whether fn is a func value of registry.yaml: NAME or
// PKG.NAME, PKG a slash-separated directory path below the hook package.
func ValidFunc(fn string) bool {
	pkg, name := SplitFunc(fn)
	if !token.IsIdentifier(name) {
		return false
	}
	if pkg == "" {
		return !strings.Contains(fn, ".")
	}
	for elem := range strings.SplitSeq(pkg, "/") {
		if !token.IsIdentifier(elem) && !validDir(elem) {
			return false
		}
	}
	return true
}

// validDir accepts directory names such as "lib-foo" or "v2".
func validDir(elem string) bool {
	if elem == "" || elem == "." || elem == ".." || strings.HasPrefix(elem, ".") {
		return false
	}
	return strings.IndexFunc(elem, func(r rune) bool {
		return !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
}
