package upgrade

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/hook"
)

// Refusal is an upgrade the engine will not run, with the reason and what
// to do; the store is left untouched.
type Refusal struct {
	Reason string
	// Offline reports an online upgrade refused because pending hooks
	// must run offline; a command line adds how to run the offline
	// upgrade.
	Offline bool
}

func (r *Refusal) Error() string { return r.Reason }

func refusef(format string, args ...any) *Refusal {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// Plan is what an upgrade of some data to a registry's release would do. It
// is computed from the metadata alone (see [PlanFor]), so a backup's
// manifest plans as well as a store.
type Plan struct {
	// Product is the data's product; empty when the metadata does not
	// record one.
	Product string `json:"product"`
	// Release is the release of the registry (the migrator).
	Release string `json:"release"`
	// DataVersion and LastUpgradeHook are the data's current state.
	DataVersion     string `json:"data_version"`
	LastUpgradeHook *int   `json:"last_upgrade_hook"`
	// TargetVersion is the data version after the upgrade.
	TargetVersion string `json:"target_version"`
	// Pending are the hooks to run, in order.
	Pending []Pending `json:"pending"`
	// Applied are the data's applied-hook records.
	Applied []Applied `json:"applied"`
	// Covered are the maintenance hooks the release that installed the
	// data contained ([Metadata.Covered]); omitted when none.
	Covered []int `json:"covered,omitempty"`
	// OnlineOK reports that every pending hook allows online.
	OnlineOK bool `json:"online_ok"`
	// DigestMismatches are applied hooks whose recorded digest differs
	// from the binary's and is on no amendment chain of the hook.
	DigestMismatches []DigestMismatch `json:"digest_mismatches"`
	// Amended are applied hooks whose code changed since they were
	// applied through reviewed amendments (hookgen amend) that lead from
	// the recorded digest to the binary's: accepted, and recorded in the
	// applied record (Applied.AmendedTo) by the upgrade.
	Amended []AmendedHook `json:"amended"`
}

// AmendedHook is an applied hook whose recorded digest an amendment names.
type AmendedHook struct {
	Num      int    `json:"num"`
	Name     string `json:"name"`
	Recorded string `json:"recorded"`
	Binary   string `json:"binary"`
	// Reasons are the reasons of the amendments between the two, oldest
	// first.
	Reasons []string `json:"reasons"`
}

// Pending is one hook an upgrade would run.
type Pending struct {
	Num          int    `json:"num"`
	IntroducedIn string `json:"introduced_in"`
	AllowOnline  bool   `json:"allow_online"`
	Name         string `json:"name"`
	// DataVersionAfter is the data version once the hook is applied.
	DataVersionAfter string `json:"data_version_after"`

	fn     hook.Func
	digest string
}

// DigestMismatch is an applied hook that changed since it was applied.
type DigestMismatch struct {
	Num      int    `json:"num"`
	Name     string `json:"name"`
	Recorded string `json:"recorded"`
	Binary   string `json:"binary"`
}

// PlanFor plans the upgrade of data with metadata meta to reg's release. It
// returns a *Refusal, with the plan as far as it goes, when the data
// belongs to another product, is newer than the release, has applied a hook
// this release does not know (a downgrade), or is older than the registry's
// MinDataVersion. Digest mismatches and offline hooks are reported in the
// plan; [Plan.Check] turns them into refusals for a given run.
func PlanFor(reg *hook.Registry, meta Metadata) (*Plan, error) {
	p := &Plan{
		Product:          meta.Product,
		Release:          reg.Release,
		DataVersion:      meta.DataVersion,
		LastUpgradeHook:  meta.LastUpgradeHook,
		TargetVersion:    meta.DataVersion,
		Pending:          []Pending{},
		Applied:          meta.Applied,
		Covered:          meta.Covered,
		OnlineOK:         true,
		DigestMismatches: []DigestMismatch{},
		Amended:          []AmendedHook{},
	}
	if p.Applied == nil {
		p.Applied = []Applied{}
	}
	if meta.Product != "" && meta.Product != reg.Product {
		return p, refusef("the data belongs to product %q, this migrator upgrades %q", meta.Product, reg.Product)
	}
	release, err := semver.StrictNewVersion(reg.Release)
	if err != nil {
		return p, fmt.Errorf("registry release %q: %w", reg.Release, err)
	}
	data, err := semver.StrictNewVersion(meta.DataVersion)
	if err != nil {
		return p, refusef("the data version %q is not a semantic version: %v", meta.DataVersion, err)
	}
	if data.GreaterThan(release) {
		return p, refusef("the data version %s is newer than this migrator's release %s: use the migrator of release %s or later", data, release, data)
	}
	maxNum := reg.MaxMainNum()
	if last := meta.LastUpgradeHook; last != nil && *last > maxNum {
		return p, refusef("the data has applied hook %d, but the last hook this migrator (release %s) knows is %d: a downgrade; use the migrator of the release that wrote the data or later", *last, release, maxNum)
	}
	if err := unknownMaintenance(reg, meta, release); err != nil {
		return p, err
	}
	if reg.MinDataVersion != "" {
		min, err := semver.StrictNewVersion(reg.MinDataVersion)
		if err != nil {
			return p, fmt.Errorf("registry min_data_version %q: %w", reg.MinDataVersion, err)
		}
		if data.LessThan(min) {
			return p, refusef("the data version %s is older than %s, the oldest this release %s upgrades: upgrade through release %s first", data, min, release, min)
		}
	}
	for _, a := range meta.Applied {
		h, ok := reg.Lookup(a.Num)
		if !ok {
			continue
		}
		if a.Name != "" && a.Name != h.Name {
			// Not a changed hook but another one: the data never ran
			// this migrator's hook a.Num, and no flag may skip it.
			return p, refusef("the data's hook %d is %s (applied by release %s), but this migrator's hook %d is %s: two different hooks under one number, so %s never ran on this data; upgrade it with a migrator whose hook %d is %s (the release line the data comes from), and give each hook a number of its own",
				a.Num, a.Name, a.Release, h.Num, h.Name, h.Name, a.Num, a.Name)
		}
		same, reasons, known := h.Amended(a.Digest)
		switch {
		case !known:
			p.DigestMismatches = append(p.DigestMismatches, DigestMismatch{Num: a.Num, Name: h.Name, Recorded: a.Digest, Binary: h.Digest})
		case !same:
			p.Amended = append(p.Amended, AmendedHook{Num: a.Num, Name: h.Name, Recorded: a.Digest, Binary: h.Digest, Reasons: reasons})
		}
	}
	order, err := RunOrder(reg)
	if err != nil {
		return p, err
	}
	applied := make(map[int]bool, len(meta.Applied))
	for _, a := range meta.Applied {
		applied[a.Num] = true
	}
	for _, h := range order {
		pending, err := isPending(h, meta, data, applied)
		if err != nil {
			return p, err
		}
		if !pending {
			continue
		}
		p.Pending = append(p.Pending, Pending{Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Name, fn: h.Func, digest: h.Digest})
		p.OnlineOK = p.OnlineOK && h.AllowOnline
	}
	// The data version advances to a hook's version once no pending hook
	// of that version is left, and to the release after the last hook;
	// it never goes back.
	cur := data
	for i := range p.Pending {
		next := release
		if i+1 < len(p.Pending) {
			v, err := semver.StrictNewVersion(p.Pending[i].IntroducedIn)
			if err != nil {
				return p, fmt.Errorf("hook %d: introduced_in %q: %w", p.Pending[i].Num, p.Pending[i].IntroducedIn, err)
			}
			next = v
			if p.Pending[i+1].IntroducedIn == p.Pending[i].IntroducedIn {
				next = cur
			}
		}
		if next.GreaterThan(cur) {
			cur = next
		}
		p.Pending[i].DataVersionAfter = cur.String()
	}
	if release.GreaterThan(cur) {
		cur = release
	}
	p.TargetVersion = cur.String()
	return p, nil
}

// Check returns a *Refusal when the plan may not run: online with a
// pending hook that does not allow online (listing them), or over an
// applied hook whose digest changed unless allowDigestMismatch.
func (p *Plan) Check(online, allowDigestMismatch bool) error {
	if len(p.DigestMismatches) > 0 && !allowDigestMismatch {
		var b strings.Builder
		for _, m := range p.DigestMismatches {
			fmt.Fprintf(&b, "\n\thook %d (%s): applied with digest %s, this migrator has %s", m.Num, m.Name, m.Recorded, m.Binary)
		}
		return refusef("applied hooks changed since they were applied:%s\nrun with --allow-digest-mismatch to proceed knowingly (recorded in the metadata)", b.String())
	}
	if online && !p.OnlineOK {
		var b strings.Builder
		for _, h := range p.Pending {
			if !h.AllowOnline {
				fmt.Fprintf(&b, "\n\thook %d (%s, introduced in %s)", h.Num, h.Name, h.IntroducedIn)
			}
		}
		return &Refusal{Reason: fmt.Sprintf("an online upgrade is refused: pending hooks do not allow online:%s\nan offline upgrade is needed", b.String()), Offline: true}
	}
	return nil
}

// isPending says whether hook h is pending on data with metadata meta
// (data version data; applied, the numbers of its applied records):
//
//   - a hook the data applied (an applied record of its number) or that
//     the release which installed or adopted the data contained
//     (meta.Covered) never is;
//   - a maintenance hook (hook.MaintenanceBase) otherwise always is: it is
//     known by identity, never by the high-water mark;
//   - main's hooks follow the seed's rules: num > last_upgrade_hook, or,
//     without last_upgrade_hook, introduced_in > data_version.
//
// Data that records no maintenance hook (no Covered, no such applied
// record) plans exactly as under the seed's rules, since its applied
// records are all at or below last_upgrade_hook.
func isPending(h hook.Hook, meta Metadata, data *semver.Version, applied map[int]bool) (bool, error) {
	if applied[h.Num] || slices.Contains(meta.Covered, h.Num) {
		return false, nil
	}
	if hook.IsMaintenance(h.Num) {
		return true, nil
	}
	if meta.LastUpgradeHook != nil {
		return h.Num > *meta.LastUpgradeHook, nil
	}
	v, err := semver.StrictNewVersion(h.IntroducedIn)
	if err != nil {
		return false, fmt.Errorf("hook %d: introduced_in %q: %w", h.Num, h.IntroducedIn, err)
	}
	return v.GreaterThan(data), nil
}

// RunOrder returns reg's hooks in the order an upgrade runs them:
// ascending introduced_in, then ascending num. For main's hooks alone
// (whose numbers and versions both grow) that is ascending num, the seed's
// order; a maintenance hook runs where its version places it: after the
// hooks of the releases before it, before those of later releases when
// both are pending. On data of a later release of main it runs after
// every hook that release applied, so a maintenance hook must be correct
// on the data of every later release too.
func RunOrder(reg *hook.Registry) ([]hook.Hook, error) {
	type keyed struct {
		h hook.Hook
		v *semver.Version
	}
	ks := make([]keyed, len(reg.Hooks))
	for i, h := range reg.Hooks {
		v, err := semver.StrictNewVersion(h.IntroducedIn)
		if err != nil {
			return nil, fmt.Errorf("hook %d: introduced_in %q: %w", h.Num, h.IntroducedIn, err)
		}
		ks[i] = keyed{h, v}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		if c := a.v.Compare(b.v); c != 0 {
			return c
		}
		return cmp.Compare(a.h.Num, b.h.Num)
	})
	out := make([]hook.Hook, len(ks))
	for i, k := range ks {
		out[i] = k.h
	}
	return out, nil
}

// unknownMaintenance refuses data that applied, or was installed with, a
// maintenance hook this registry does not carry and did not retire: the
// data comes from a patch release of that line newer than the line's
// hooks this migrator carries (a downgrade of that line's hooks), and
// upgrading it would leave it to a release that does not know what the
// hook did. A hook of a line older than the registry's MinDataVersion's
// is retired; one below a hook of its line this registry carries is too.
func unknownMaintenance(reg *hook.Registry, meta Metadata, release *semver.Version) error {
	nums := slices.Clone(meta.Covered)
	for _, a := range meta.Applied {
		if hook.IsMaintenance(a.Num) {
			nums = append(nums, a.Num)
		}
	}
	var min *semver.Version
	if reg.MinDataVersion != "" {
		min, _ = semver.StrictNewVersion(reg.MinDataVersion)
	}
	for _, n := range nums {
		if _, ok := reg.Lookup(n); ok {
			continue
		}
		major, minor, _, _ := hook.LineOf(n)
		if min != nil && (uint64(major) < min.Major() || uint64(major) == min.Major() && uint64(minor) < min.Minor()) {
			continue // retired with its line
		}
		carried := false
		for _, h := range reg.Hooks {
			hmaj, hmin, _, ok := hook.LineOf(h.Num)
			if ok && hmaj == major && hmin == minor && h.Num > n {
				carried = true // a later hook of the line: n was retired
				break
			}
		}
		if carried {
			continue
		}
		return refusef("the data has maintenance hook %d of line %s, which this migrator (release %s) does not carry: the data comes from a patch release of %s newer than this release knows; upgrade it with a migrator whose registry carries hook %d (a later release of main that merged the maintenance branch)", n, hook.LineName(n), release, hook.LineName(n), n)
	}
	return nil
}
