package hook

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Registry is the ordered list of a product's upgrade hooks, as generated
// from registry.yaml by hookgen.
type Registry struct {
	// Product names the product whose data the hooks upgrade; backups of
	// another product are refused.
	Product string
	// Release is the release this registry belongs to.
	Release string
	// MinDataVersion is the oldest data version this release upgrades;
	// empty when every version is accepted.
	MinDataVersion string
	// Digest identifies the registry: see ComputeDigest.
	Digest string
	// Hooks in ascending Num order (main's hooks, then the maintenance
	// hooks: see MaintenanceBase).
	Hooks []Hook
}

// DigestPrefix is the algorithm prefix of registry digests.
const DigestPrefix = "h1:"

// CodeDigestPrefix is the algorithm prefix of the code digests hookgen
// generates (Hook.Digest); digests of earlier algorithms reach them through
// Hook.Amendments.
const CodeDigestPrefix = "h4:"

// ComputeDigest returns the registry digest: "h1:" and the base64 SHA-256 of
// a text that names the product, the release, the minimum data version and,
// for every hook in ascending order, its number, version, online flag, name
// and code digest. Two binaries with the same registry digest run the same
// hooks.
func (r *Registry) ComputeDigest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "product %s\nrelease %s\nmin_data_version %s\n", r.Product, r.Release, r.MinDataVersion)
	for _, h := range r.Hooks {
		fmt.Fprintf(&b, "hook %d %s %s %s %s\n", h.Num, h.IntroducedIn, strconv.FormatBool(h.AllowOnline), h.Name, h.Digest)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return DigestPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// Lookup returns the hook numbered num.
func (r *Registry) Lookup(num int) (Hook, bool) {
	for _, h := range r.Hooks {
		if h.Num == num {
			return h, true
		}
	}
	return Hook{}, false
}

// Maintenance hooks. A hook added on a maintenance branch, for a patch
// release of an older line (2.16.1 once main has hooks of 2.17.0), takes a
// number of its line's own range, so that it never collides with a number
// of main's or of another line's:
//
//	MaintenanceBase + MAJOR·1 000 000 + MINOR·1 000 + k,   1 ≤ k ≤ 999
//
// (hook 1 of line 2.16 is 1002016001). Main's hooks are numbered below
// MaintenanceBase. A maintenance hook is known by identity, never by a
// high-water mark: it does not count toward last_upgrade_hook, it is
// pending on data that neither applied it nor was installed by a release
// that contained it, and it runs where its introduced_in places it:
// pending hooks run in ascending introduced_in, then ascending num (for
// main's hooks alone, that is ascending num).
const (
	MaintenanceBase = 1_000_000_000
	// MaxLineHooks is the number of hooks a maintenance line can hold.
	MaxLineHooks = 999
	// MaxLine bounds MAJOR and MINOR of a maintenance line.
	MaxLine = 999
)

// IsMaintenance reports whether num is the number of a maintenance hook.
func IsMaintenance(num int) bool { return num >= MaintenanceBase }

// LineOf returns the maintenance line (MAJOR, MINOR) and the index k in it
// of a maintenance hook's number; ok is false for main's numbers.
func LineOf(num int) (major, minor, k int, ok bool) {
	if !IsMaintenance(num) {
		return 0, 0, 0, false
	}
	n := num - MaintenanceBase
	return n / 1_000_000, n / 1_000 % 1_000, n % 1_000, true
}

// MaintenanceNum returns the number of hook k (1 to MaxLineHooks) of the
// maintenance line MAJOR.MINOR.
func MaintenanceNum(major, minor, k int) int {
	return MaintenanceBase + major*1_000_000 + minor*1_000 + k
}

// LineName returns "MAJOR.MINOR" of a maintenance hook's number, "" for
// main's numbers.
func LineName(num int) string {
	major, minor, _, ok := LineOf(num)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d.%d", major, minor)
}

// MaxMainNum returns the largest number of main's hooks (not maintenance
// hooks): the high-water mark last_upgrade_hook is compared with; 0 when
// there is none.
func (r *Registry) MaxMainNum() int {
	m := 0
	for _, h := range r.Hooks {
		if !IsMaintenance(h.Num) {
			m = max(m, h.Num)
		}
	}
	return m
}
