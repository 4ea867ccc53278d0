package lint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/codedigest"
	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/registry"
)

// ErrNothingToAmend is returned by Amend when the hook's code digest is the
// one at the references already, or the hook has not landed.
var ErrNothingToAmend = errors.New("nothing to amend")

// Amended is the amendment Amend recorded.
type Amended struct {
	// Num is the hook's number.
	Num              int
	Old, New, Reason string
	// Ref is the reference whose digest the chain started from.
	Ref string
}

// Amend records a reviewed change of the code of hooks nums in the
// registry, with one reason: for each, an amendment {old, new, reason}
// appended to the hook's amendments list, old being the digest the hook has
// at the references (followed through the amendments already recorded; the
// merge base's first) and new its current code digest. The registry is
// edited as text, keeping its comments and layout, and replaced atomically
// once: either every hook is amended or none (an error names the hook).
func Amend(ctx context.Context, opts Options, nums []int, reason string) ([]Amended, error) {
	if len(nums) == 0 {
		return nil, errors.New("amending: no hook number")
	}
	if strings.TrimSpace(reason) == "" || strings.ContainsAny(reason, "\r\n") {
		return nil, fmt.Errorf("amending hook %d: the reason must be one non-empty line", nums[0])
	}
	data, err := os.ReadFile(opts.Registry)
	if err != nil {
		return nil, fmt.Errorf("reading the registry: %w", err)
	}
	cur, pds := registry.Parse(opts.Registry, data)
	if len(pds) > 0 {
		return nil, fmt.Errorf("amending hook %d: %s: the registry does not parse; run hookgen check", nums[0], pds[0].Text())
	}
	w, err := open(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer w.close()
	refs, err := w.refs(ctx, cur)
	if err != nil {
		return nil, err
	}
	funcs, fds, err := registry.LoadFuncs(opts.ModuleDir, cur)
	if err != nil {
		return nil, err
	}
	w.loaded = funcs.Packages
	var out []Amended
	seen := make(map[int]bool)
	for _, num := range nums {
		if seen[num] {
			continue
		}
		seen[num] = true
		am, err := w.amendment(ctx, opts, cur, funcs, fds, refs, num, reason)
		if err != nil {
			return nil, err
		}
		data, err = insertAmendment(data, num, am)
		if err != nil {
			return nil, fmt.Errorf("amending hook %d in %s: %w", num, opts.Registry, err)
		}
		check, pds := registry.Parse(opts.Registry, data)
		if len(pds) > 0 || !lastAmendmentIs(check, num, am) {
			return nil, fmt.Errorf("amending hook %d in %s: the edited registry does not read back as intended; add the amendment by hand: old: %s new: %s", num, opts.Registry, am.Old, am.New)
		}
		out = append(out, am)
	}
	if err := writeAtomic(opts.Registry, data); err != nil {
		return nil, err
	}
	return out, nil
}

// amendment returns the amendment of hook num: from the digest at the
// first reference that has one, through the amendments recorded, to the
// current digest.
func (w *work) amendment(ctx context.Context, opts Options, cur *registry.File, funcs *registry.Funcs, fds []diag.Diagnostic, refs []ref, num int, reason string) (Amended, error) {
	idx := -1
	for i, h := range cur.Hooks {
		if h.Num == num {
			idx = i
		}
	}
	if idx < 0 {
		return Amended{}, fmt.Errorf("amending hook %d: %s has no hook %d", num, opts.Registry, num)
	}
	h := cur.Hooks[idx]
	if funcs.Funcs[idx] == nil {
		msg := "its function does not check"
		if len(fds) > 0 {
			msg = fds[0].Text()
		}
		return Amended{}, fmt.Errorf("amending hook %d: %s", num, msg)
	}
	res, err := funcs.Digest(cur, idx, codedigest.Prefix)
	if err != nil {
		return Amended{}, err
	}
	var from, fromRef, fromCommit string
	amended := false
	for _, r := range refs {
		old, digests, err := w.read(ctx, r.name, r.commit)
		if err != nil {
			return Amended{}, err
		}
		if old == nil || digests.digest(num, "") == "" {
			continue
		}
		d := digests.digest(num, "")
		for _, a := range h.Amendments {
			if a.Old == d {
				d = a.New
				amended = true
			}
		}
		from, fromRef, fromCommit = d, r.name, r.commit
		break
	}
	if from == "" {
		return Amended{}, fmt.Errorf("amending hook %d: %w: it has not landed at any reference (the merge base with the default branch, the release tags), so it may still change freely", num, ErrNothingToAmend)
	}
	now, same := res.Digest, from
	if codedigest.Algorithm(from) != codedigest.Algorithm(now) {
		// A digest of an earlier algorithm: compare like with like, the
		// current algorithm over the reference's tree (an amendment's
		// end: the earlier algorithm over the current tree).
		if amended {
			old, err := funcs.Digest(cur, idx, codedigest.Algorithm(from)+":")
			if err != nil {
				return Amended{}, err
			}
			now = old.Digest
		} else {
			ref, err := w.refResult(ctx, fromCommit, num, codedigest.Prefix)
			if err != nil {
				return Amended{}, fmt.Errorf("amending hook %d: %s records %s: computing the %s digest over its tree: %w", num, fromRef, from, codedigest.Algorithm(codedigest.Prefix), err)
			}
			same = ref.Digest
		}
	}
	if same == now {
		return Amended{}, fmt.Errorf("amending hook %d: %w: its code digest %q is the one at %s", num, ErrNothingToAmend, now, fromRef)
	}
	return Amended{Num: num, Old: from, New: res.Digest, Reason: reason, Ref: fromRef}, nil
}

func lastAmendmentIs(f *registry.File, num int, am Amended) bool {
	for _, h := range f.Hooks {
		if h.Num == num && len(h.Amendments) > 0 {
			a := h.Amendments[len(h.Amendments)-1]
			return a.Old == am.Old && a.New == am.New && a.Reason == am.Reason
		}
	}
	return false
}

// insertAmendment returns data with am appended to hook num's amendments,
// adding the amendments key when there is none.
func insertAmendment(data []byte, num int, am Amended) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty registry")
	}
	hooks := mapValue(doc.Content[0], "hooks")
	if hooks == nil || hooks.Kind != yaml.SequenceNode {
		return nil, errors.New("no hooks list")
	}
	var item *yaml.Node
	for _, it := range hooks.Content {
		// the num as the registry reads it (01 is 1)
		if n := mapValue(it, "num"); n != nil {
			if v, err := strconv.Atoi(n.Value); err == nil && v == num {
				item = it
			}
		}
	}
	if item == nil {
		return nil, fmt.Errorf("hook %d is not in the hooks list", num)
	}
	if item.Kind != yaml.MappingNode || item.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("hook %d is not a block mapping; rewrite it as one (one key a line)", num)
	}
	reason, err := yaml.Marshal(am.Reason)
	if err != nil {
		return nil, err
	}
	reasonText := strings.TrimSuffix(string(reason), "\n")
	lines := strings.SplitAfter(string(data), "\n")
	keyIndent := item.Column - 1
	var at int // insert before line index at
	var text string
	if seq := mapValue(item, "amendments"); seq != nil {
		if seq.Kind != yaml.SequenceNode || seq.Style&yaml.FlowStyle != 0 {
			return nil, errors.New("amendments is not a block list; rewrite it as one")
		}
		key := mapKey(item, "amendments")
		at = blockEnd(lines, key.Line-1, keyIndent, true)
		pad := strings.Repeat(" ", keyIndent+2)
		if len(seq.Content) > 0 {
			pad = strings.Repeat(" ", seq.Content[0].Column-3)
		}
		text = fmt.Sprintf("%s- old: %s\n%s  new: %s\n%s  reason: %s\n", pad, am.Old, pad, am.New, pad, reasonText)
	} else {
		at = blockEnd(lines, item.Line-1, keyIndent, false)
		pad := strings.Repeat(" ", keyIndent)
		text = fmt.Sprintf("%samendments:\n%s  - old: %s\n%s    new: %s\n%s    reason: %s\n", pad, pad, am.Old, pad, am.New, pad, reasonText)
	}
	if at > 0 && !strings.HasSuffix(lines[at-1], "\n") {
		lines[at-1] += "\n"
	}
	var b bytes.Buffer
	for _, l := range lines[:at] {
		b.WriteString(l)
	}
	b.WriteString(text)
	for _, l := range lines[at:] {
		b.WriteString(l)
	}
	return b.Bytes(), nil
}

// blockEnd returns the index of the line after the block that starts at
// line start (0-based): for a list item whose keys stand at indent, the
// lines below indented as much or more; for a key at indent holding a list,
// the lines more indented or list items at the same indent. Trailing blank
// and comment lines are left out.
func blockEnd(lines []string, start, indent int, list bool) int {
	end := start + 1
	for i := start + 1; i < len(lines); i++ {
		t := strings.TrimLeft(lines[i], " ")
		trimmed := strings.TrimSpace(t)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		n := len(lines[i]) - len(t)
		if n > indent || !list && n == indent || list && n == indent && strings.HasPrefix(t, "- ") {
			end = i + 1
			continue
		}
		break
	}
	return end
}

func mapKey(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i]
		}
	}
	return nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// writeAtomic replaces path with data, keeping the old file's permissions.
func writeAtomic(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.Write(path, data, info.Mode().Perm())
}
