package lint

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/sumfile"
)

// Rule ids of lint and audit.
const (
	RuleRemoved         = "immutable-removed"
	RuleNum             = "immutable-num"
	RuleVersion         = "immutable-version"
	RuleOnline          = "immutable-online"
	RuleFunc            = "immutable-func"
	RuleCode            = "immutable-code"
	RuleAmendment       = "immutable-amendment"
	RuleInsertBelow     = "insert-below"
	RuleReleasedVersion = "released-version"
	RuleAmendInvalid    = "amend-invalid"
	RuleRegistry        = "registry-invalid"
	RuleDependency      = "dependency-version"
	RuleMaintenanceLine = "maintenance-line"
)

// snapshot is one version of the registry and the code digests of its
// hooks (from hooks.sum, or computed from the code): digest returns hook
// num's digest under algorithm alg ("h2:"; "" for the newest known), or "".
type snapshot struct {
	reg    *registry.File
	digest func(num int, alg string) string
}

// sums are the lines of a hooks.sum by hook number.
type sums map[int]sumfile.Line

func (s sums) add(lines []sumfile.Line) {
	for _, l := range lines {
		s[l.Num] = l
	}
}

// digest returns the digest of hook num under alg: the line's digest, or
// an earlier algorithm's digest of the same code.
func (s sums) digest(num int, alg string) string {
	l, ok := s[num]
	if !ok {
		return ""
	}
	if alg == "" || strings.HasPrefix(l.Digest, alg) {
		return l.Digest
	}
	for _, e := range l.Earlier {
		old, cur, _ := strings.Cut(e, "->")
		if cur == l.Digest && strings.HasPrefix(old, alg) {
			return old
		}
	}
	return ""
}

// comparison says how to report what compare finds.
type comparison struct {
	// ref names the older version in messages: "v5.0.0", "commit 1a2b3c4".
	ref string
	// landed returns where a hook landed, for the related positions.
	landed func(num int) []diag.Related
	// changed lists what changed behind a code change of hook num from
	// digest old (nil when unknown).
	changed func(num int, old string) []change
	// prefix starts every message ("commit 1a2b3c4 (subject): " in audit).
	prefix string
	// related is added to every finding (the offending commit in audit).
	related []diag.Related
	// recorded returns the digest the reference recorded for hook num,
	// when the old digest compared is computed over its tree under a
	// newer algorithm (lint): amendments may start from either.
	recorded func(num int) string
	// otherLine is set for a release tag that is not in the history
	// being checked: another line's release (a later one seen from a
	// maintenance branch, a maintenance release seen from main). Its
	// hooks introduced after the tree's release cannot be in the tree,
	// and its maintenance hooks reach the tree only when their branch is
	// merged, so their absence is no removal. (The runtime refuses data
	// that applied a maintenance hook the migrator does not carry, and
	// the release gate upgrades every release's fixture.)
	otherLine bool
}

func (c *comparison) finding(ds *[]diag.Diagnostic, pos diag.Position, rule string, num int, format string, args ...any) {
	d := diag.Diagnostic{Pos: pos, Rule: rule, Hook: num, Message: c.prefix + fmt.Sprintf(format, args...)}
	if c.landed != nil && num != 0 {
		d.Related = append(d.Related, c.landed(num)...)
	}
	d.Related = append(d.Related, c.related...)
	*ds = append(*ds, d)
}

// compare returns the findings of cur against old: landed hooks removed
// (unless retired below min_data_version), renumbered, edited, their code
// changed without a matching amendment, their amendments rewritten; new
// hooks inserted below landed ones; amendments that do not match.
func compare(old, cur snapshot, c *comparison) []diag.Diagnostic {
	var ds []diag.Diagnostic
	oldByNum := make(map[int]*registry.Hook, len(old.reg.Hooks))
	for i := range old.reg.Hooks {
		oldByNum[old.reg.Hooks[i].Num] = &old.reg.Hooks[i]
	}
	curByNum := make(map[int]*registry.Hook, len(cur.reg.Hooks))
	curByFunc := make(map[string]*registry.Hook, len(cur.reg.Hooks))
	for i := range cur.reg.Hooks {
		h := &cur.reg.Hooks[i]
		curByNum[h.Num] = h
		curByFunc[h.Func] = h
	}
	var minData *semver.Version
	if cur.reg.MinDataVersion != "" {
		minData, _ = semver.StrictNewVersion(cur.reg.MinDataVersion)
	}
	renumbered := make(map[int]bool)
	for i := range old.reg.Hooks {
		o := &old.reg.Hooks[i]
		h := curByNum[o.Num]
		if h == nil {
			if n := curByFunc[o.Func]; n != nil && oldByNum[n.Num] == nil {
				renumbered[n.Num] = true
				c.finding(&ds, n.NumPos, RuleNum, o.Num, "num changed from %d to %d (func %q); a landed hook keeps its number: set num back to %d", o.Num, n.Num, o.Func, o.Num)
				continue
			}
			if minData != nil && o.Version != nil && o.Version.LessThan(minData) {
				continue
			}
			if c.otherLine && (o.Maintenance || o.Version != nil && cur.reg.Version() != nil && o.Version.GreaterThan(cur.reg.Version())) {
				continue
			}
			hint := fmt.Sprintf("a hook can be removed only once retired: set min_data_version above %q", o.IntroducedIn)
			if minData != nil {
				hint = fmt.Sprintf("only hooks introduced before min_data_version %q may be removed", cur.reg.MinDataVersion)
			}
			c.finding(&ds, cur.reg.HooksPos, RuleRemoved, o.Num, "removed (func %q, introduced_in %q) although it landed in %s; restore it: %s", o.Func, o.IntroducedIn, c.ref, hint)
			continue
		}
		if h.IntroducedIn != o.IntroducedIn {
			c.finding(&ds, h.IntroducedInPos, RuleVersion, o.Num, "introduced_in changed from %q to %q; a landed hook never changes: set it back to %q and add a new hook on top", o.IntroducedIn, h.IntroducedIn, o.IntroducedIn)
		}
		if h.AllowOnline != o.AllowOnline {
			c.finding(&ds, h.AllowOnlinePos, RuleOnline, o.Num, "allow_online changed from %q to %q; a landed hook never changes: set it back to %t", fmt.Sprint(o.AllowOnline), fmt.Sprint(h.AllowOnline), o.AllowOnline)
		}
		if h.Func != o.Func {
			c.finding(&ds, h.FuncPos, RuleFunc, o.Num, "func changed from %q to %q; a landed hook never changes: set it back to %q", o.Func, h.Func, o.Func)
		}
		if !amendmentsExtend(o.Amendments, h.Amendments) {
			c.finding(&ds, h.Pos, RuleAmendment, o.Num, "amendments recorded in %s were changed or removed; amendments are append-only: restore them and add a new one with hookgen amend %d", c.ref, o.Num)
			continue
		}
		c.code(&ds, o, h, old.digest(o.Num, ""), func(alg string) string { return cur.digest(o.Num, alg) })
	}
	top := -1
	for i, h := range cur.reg.Hooks {
		if oldByNum[h.Num] != nil {
			if top < 0 {
				top = i
			}
			continue
		}
		// A maintenance hook stands where its version places it, below
		// main's later hooks: merged from its branch, it is not new below
		// them (lint checks it against its line: maintenance-line).
		if top >= 0 && !renumbered[h.Num] && !h.Maintenance {
			landed := cur.reg.Hooks[top]
			c.finding(&ds, h.NumPos, RuleInsertBelow, h.Num, "new hook stands below hook %d, which landed in %s; add new hooks at the top of the list with a num larger than %d", landed.Num, c.ref, maxNum(cur.reg))
		}
	}
	return ds
}

// code checks the code digest of a landed hook: unchanged (compared under
// the algorithm of the old digest), or changed through a chain of
// amendments from the old digest to a current one.
func (c *comparison) code(ds *[]diag.Diagnostic, o, h *registry.Hook, oldDigest string, curDigest func(alg string) string) {
	if oldDigest == "" {
		return // nothing recorded
	}
	cur := curDigest(algorithm(oldDigest) + ":")
	newest := curDigest("")
	if cur == "" {
		// An algorithm this hookgen no longer computes, or a function
		// that does not check (reported by its own rule).
		return
	}
	if cur == oldDigest && len(h.Amendments) == len(o.Amendments) {
		return
	}
	added := h.Amendments[len(o.Amendments):]
	for _, a := range added {
		if a.Old == a.New || !knownAlgorithm(a.Old) || !knownAlgorithm(a.New) {
			c.finding(ds, a.Pos, RuleAmendInvalid, h.Num, "amendment from %q to %q is not a change between two code digests of the hook; remove it and run hookgen amend %d --reason ...", a.Old, a.New, h.Num)
			return
		}
	}
	var used []bool
	follow := func(d string) string {
		used = make([]bool, len(h.Amendments))
		for i, a := range h.Amendments {
			if a.Old == d {
				d = a.New
				used[i] = true
			}
		}
		return d
	}
	d := follow(oldDigest)
	if d != curDigest(algorithm(d)+":") && c.recorded != nil {
		if r := c.recorded(h.Num); r != "" && r != oldDigest {
			// Only through an amendment: the recorded digest itself
			// was compared by the current algorithm over its tree.
			if e := follow(r); e != r && e == curDigest(algorithm(e)+":") {
				d = e
			} else {
				follow(oldDigest)
			}
		}
	}
	if d == curDigest(algorithm(d)+":") {
		for i, a := range added {
			if !used[len(o.Amendments)+i] {
				c.finding(ds, a.Pos, RuleAmendInvalid, h.Num, "amendment from %q to %q does not continue the chain from the digest at %s, %q, to the current code digest %q; remove it", a.Old, a.New, c.ref, oldDigest, newest)
			}
		}
		return
	}
	if cur == oldDigest {
		if len(added) > 0 {
			c.finding(ds, added[0].Pos, RuleAmendInvalid, h.Num, "amendment from %q to %q does not lead from the digest at %s, %q, to the current code digest %q, and the code did not change since; remove it", added[0].Old, added[0].New, c.ref, oldDigest, newest)
		}
		return
	}
	if len(added) > 0 {
		c.finding(ds, added[0].Pos, RuleAmendInvalid, h.Num, "amendments do not lead from the digest at %s, %q, to the current code digest %q (this one records old %q, new %q); remove them and run hookgen amend %d --reason ...", c.ref, oldDigest, newest, added[0].Old, added[0].New, h.Num)
		return
	}
	var changes []change
	if c.changed != nil {
		changes = c.changed(h.Num, oldDigest)
	}
	// A module's version (h3), or the pieces of a module whose
	// version changed (h4), grouped by module: "module M from "v1" to
	// "v2" (changed: M/x.go: func F)".
	var names, deps []string
	var mods []string
	pieces := make(map[string][]string)
	for _, ch := range changes {
		if ch.mod != "" {
			k := fmt.Sprintf("module %s from %q to %q", ch.mod, ch.from, ch.to)
			if _, ok := pieces[k]; !ok {
				mods = append(mods, k)
				pieces[k] = nil
			}
			if !strings.HasPrefix(ch.name, "go.mod: require ") {
				pieces[k] = append(pieces[k], ch.name)
			}
			continue
		}
		names = append(names, ch.name)
	}
	for _, k := range mods {
		if len(pieces[k]) > 0 {
			k += " (changed: " + strings.Join(pieces[k], ", ") + ")"
		}
		deps = append(deps, k)
	}
	if len(deps) > 0 && len(names) == 0 {
		c.finding(ds, h.FuncPos, RuleDependency, h.Num, "func %q uses a dependency whose version changed since %s: %s; its digest %q is now %q; review the dependency's changes and record them with hookgen amend %d --reason \"...\", or restore the version in go.mod", h.Func, c.ref, strings.Join(deps, ", "), oldDigest, newest, h.Num)
		return
	}
	what := ""
	if all := append(names, deps...); len(all) > 0 {
		what = "; changed: " + strings.Join(all, ", ")
	}
	c.finding(ds, h.FuncPos, RuleCode, h.Num, "code of func %q changed since %s: digest %q is now %q%s; revert the change, or record a reviewed change with hookgen amend %d --reason \"...\"", h.Func, c.ref, oldDigest, cur, what, h.Num)
}

// knownAlgorithm reports a digest of an algorithm hookgen computes.
func knownAlgorithm(digest string) bool {
	return strings.HasPrefix(digest, codedigest.Prefix) || strings.HasPrefix(digest, codedigest.PrefixH3) || strings.HasPrefix(digest, codedigest.PrefixH2) || strings.HasPrefix(digest, codedigest.PrefixH1)
}

func amendmentsExtend(old, cur []registry.Amendment) bool {
	if len(cur) < len(old) {
		return false
	}
	for i, a := range old {
		b := cur[i]
		if a.Old != b.Old || a.New != b.New || a.Reason != b.Reason {
			return false
		}
	}
	return true
}

// algorithm returns a digest's algorithm prefix ("h1").
func algorithm(digest string) string {
	alg, _, _ := strings.Cut(digest, ":")
	return alg
}

// maxNum returns the largest number of main's hooks (maintenance hooks
// are numbered in their lines' ranges).
func maxNum(f *registry.File) int {
	m := 0
	for _, h := range f.Hooks {
		if !h.Maintenance {
			m = max(m, h.Num)
		}
	}
	return m
}
