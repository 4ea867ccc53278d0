package generated_test

import (
	"slices"
	"testing"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/hook"
)

// TestRegistryDigest checks that the digest literal hookgen wrote is the
// digest of the values beside it.
func TestRegistryDigest(t *testing.T) {
	r := generated.Registry
	if got, want := r.Digest, r.ComputeDigest(); got != want {
		t.Errorf("Registry.Digest = %q, ComputeDigest() = %q", got, want)
	}
}

// TestRegistryShape checks what the migrator relies on: hooks in ascending
// number, each with a function and an "h2:" code digest.
func TestRegistryShape(t *testing.T) {
	r := generated.Registry
	if len(r.Hooks) == 0 {
		t.Fatal("no hooks")
	}
	if !slices.IsSortedFunc(r.Hooks, func(a, b hook.Hook) int { return a.Num - b.Num }) {
		t.Errorf("hooks are not in ascending number")
	}
	for _, h := range r.Hooks {
		if h.Func == nil || len(h.Digest) <= len(hook.CodeDigestPrefix) || h.Digest[:len(hook.CodeDigestPrefix)] != hook.CodeDigestPrefix {
			t.Errorf("hook %d: func %v, digest %q", h.Num, h.Func != nil, h.Digest)
		}
	}
}
