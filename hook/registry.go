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
	// Hooks in ascending Num order.
	Hooks []Hook
}

// DigestPrefix is the algorithm prefix of registry digests.
const DigestPrefix = "h1:"

// CodeDigestPrefix is the algorithm prefix of the code digests hookgen
// generates (Hook.Digest); digests of earlier algorithms reach them through
// Hook.Amendments.
const CodeDigestPrefix = "h3:"

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
