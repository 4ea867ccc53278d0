// Package lint proves against git history that no landed upgrade hook
// changed: the engine of "hookgen lint", "hookgen audit" and
// "hookgen amend".
//
// [Lint] compares the working tree's registry.yaml, and the code digest of
// every hook computed now (internal/codedigest, "h4:"), with
// registry.yaml and generated/hooks.sum at each reference commit: by
// default the merge base with the default branch and every release tag (v
// followed by a strict semantic version); a reference without registry.yaml
// has nothing to compare. [Audit] compares every commit in the history of those two files
// with its parent. Both report diagnostics with positions in registry.yaml
// and these rule ids:
//
//	immutable-removed    a landed hook removed; allowed only for hooks introduced
//	                     before min_data_version (retirement)
//	immutable-num        a landed hook renumbered (same func, another num)
//	immutable-version    introduced_in changed
//	immutable-online     allow_online changed
//	immutable-func       func changed
//	immutable-code       the code digest changed without amendments leading from
//	                     the old digest to the new one; lint names the changed
//	                     declarations by reading the reference's tree
//	dependency-version   (lint) every changed piece lies in a module of the
//	                     module cache whose version changed (h4: the code the
//	                     hook reaches there; h3: the version go.mod requires):
//	                     names the module, both versions and the changed
//	                     declarations; an error, accepted by hookgen amend
//	immutable-amendment  an amendment recorded at the reference changed or removed
//	amend-invalid        an amendment added since the reference whose digests do
//	                     not lead from the reference's digest to the current one
//	insert-below         a new hook below a landed one (not a maintenance hook:
//	                     it stands where its version places it)
//	released-version     (lint) a new hook introduced in a version that a release
//	                     tag already shipped (for a maintenance hook: a tag of
//	                     its own line)
//	maintenance-line     (lint) a maintenance hook (maintenance: true) of another
//	                     line than the tree's release that neither its line's
//	                     branch (release-MAJOR.MINOR, local or a remote's) nor a
//	                     release tag of the line holds
//	registry-invalid     (audit) a commit whose registry does not parse
//
// Maintenance branches. A maintenance hook of another line than the tree's
// release is compared with its line, so that main and the branch are
// proven consistent: with the branch release-MAJOR.MINOR when it exists,
// else the newest release tag of the line that holds it, on that line's
// hooks only (num, introduced_in, allow_online, func, code digest and
// amendments, as any landed hook). A release tag that HEAD does not
// contain is another line's release: its hooks introduced after the
// tree's release, and its maintenance hooks, are not reported as removed
// when the tree lacks them (a maintenance branch cannot hold main's later
// hooks; main holds a line's hooks once it merges the branch, and the
// runtime refuses data that applied a maintenance hook the migrator does
// not carry).
//
// Findings name where the hook landed (lint: the first commit that added
// its num line, and the first release tag containing that commit) or the
// offending commit (audit). The same finding seen from several references
// is reported once, against the first: the merge base, then the newest tag.
//
// Digests are compared like with like: where a reference recorded a digest
// of an earlier algorithm ("h2:", "h1:"), its own tree is extracted and the
// current algorithm computed over it, so that changing the algorithm raises
// no false alarm and an earlier algorithm's blind spots do not return for
// hooks released before it; a reference whose tree does not load then is an
// error. A digest of an algorithm hookgen no longer computes is not
// compared. An amendment may lead from one algorithm's digest to another's,
// starting from the digest the reference recorded or the one computed over
// its tree. A registry.yaml or hooks.sum that does
// not parse at a reference is an error wrapping ErrBrokenReference. A shallow clone is an error wrapping
// gitx.ErrIncomplete that says to run "git fetch --unshallow --tags"; a
// complete clone with a remote and no release tag, whose registry names a
// release older than its own (a hook's introduced_in, min_data_version),
// or with release tags but none for a hook's release between the oldest
// of them and the registry's own (a tag deleted or not fetched: a change
// of that hook could otherwise pass unseen), one that says to run "git
// fetch --tags".
//
// [Amend] appends an amendment {old, new, reason} to a hook in
// registry.yaml, editing the text so that comments and layout stay.
//
// Example:
//
//	ds, err := lint.Lint(ctx, lint.Options{Registry: "registry.yaml", ModuleDir: "."})
//	if err != nil {
//		return err // not a git repository, a shallow clone, an unknown --against
//	}
//	return diag.Write(os.Stderr, "text", ds)
package lint
