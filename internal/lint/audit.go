package lint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/hookreg/hookreg/internal/diag"
	"github.com/hookreg/hookreg/internal/gitx"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/sumfile"
)

// Audit checks every commit in the history of HEAD that changed the
// registry or hooks.sum against its parent (a merge against its first
// parent): no landed hook removed (except retired below min_data_version),
// renumbered, edited or inserted below, no hooks.sum digest changed without
// a matching amendment. Each finding names the offending commit.
//
// History is read in batch: one "git log --raw" lists the commits and the
// blobs of both files, one "git cat-file --batch" reads the blobs. A commit
// that only adds hooks on top of the registry and lines at the end of
// hooks.sum (the common case) is recognised from the changed bytes alone;
// any other commit is parsed in full and compared.
func Audit(ctx context.Context, opts Options) (ds []diag.Diagnostic, err error) {
	w, err := open(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := w.close(); err == nil && cerr != nil {
			err = fmt.Errorf("cleaning up: %w", cerr)
		}
	}()
	if _, err := w.repo.Resolve(ctx, "HEAD"); errors.Is(err, gitx.ErrUnknownRevision) {
		return nil, nil // no commits yet
	} else if err != nil {
		return nil, err
	}
	rev := "HEAD"
	if opts.Since != "" {
		since, err := w.repo.Resolve(ctx, opts.Since)
		if errors.Is(err, gitx.ErrUnknownRevision) {
			return nil, fmt.Errorf("--since %q: %w: no such commit, branch or tag in %s (fetch it, or check the name)", opts.Since, ErrUnknownRef, w.repo.Root)
		}
		if err != nil {
			return nil, err
		}
		rev = since + "..HEAD"
	}
	if w.batch, err = w.repo.Batch(ctx); err != nil {
		return nil, err
	}
	a := &auditor{w: w, state: make(map[string]blobs), cache: make(map[string][]byte)}
	err = w.repo.Log(ctx, rev, []string{w.relReg, w.relSum}, func(c *gitx.Commit) error {
		found, err := a.commit(c)
		ds = append(ds, found...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return diag.Sort(ds), nil
}

// blobs names the registry and hooks.sum at a commit: an object hash, or
// "" for a file that does not exist.
type blobs struct{ reg, sum string }

type auditor struct {
	w     *work
	state map[string]blobs
	// cache holds the contents of the blobs last read; a commit's new
	// blobs are its child's old ones.
	cache map[string][]byte
	order []string
}

const cacheSize = 8

func (a *auditor) read(name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	if data, ok := a.cache[name]; ok {
		return data, nil
	}
	data, ok, err := a.w.batch.Read(name)
	if err != nil {
		return nil, err
	}
	if !ok {
		data = nil
	}
	if len(a.order) == cacheSize {
		delete(a.cache, a.order[0])
		a.order = a.order[1:]
	}
	a.cache[name] = data
	a.order = append(a.order, name)
	return data, nil
}

func blobName(oid string) string {
	if gitx.NullHash(oid) {
		return ""
	}
	return oid
}

func (a *auditor) commit(c *gitx.Commit) ([]diag.Diagnostic, error) {
	var old blobs
	if len(c.Parents) > 0 {
		p, ok := a.state[c.Parents[0]]
		if !ok {
			p = blobs{c.Parents[0] + ":" + a.w.relReg, c.Parents[0] + ":" + a.w.relSum}
		}
		old = p
	}
	cur := old
	for _, ch := range c.Changes {
		switch ch.Path {
		case a.w.relReg:
			old.reg, cur.reg = blobName(ch.OldBlob), blobName(ch.NewBlob)
		case a.w.relSum:
			old.sum, cur.sum = blobName(ch.OldBlob), blobName(ch.NewBlob)
		}
	}
	a.state[c.Hash] = cur
	if old == cur {
		return nil, nil
	}
	oldReg, err := a.read(old.reg)
	if err != nil {
		return nil, err
	}
	curReg, err := a.read(cur.reg)
	if err != nil {
		return nil, err
	}
	oldSum, err := a.read(old.sum)
	if err != nil {
		return nil, err
	}
	curSum, err := a.read(cur.sum)
	if err != nil {
		return nil, err
	}
	if addsOnTop(oldReg, curReg) && appendsSum(oldSum, curSum) {
		return nil, nil
	}
	return a.compare(c, oldReg, curReg, oldSum, curSum)
}

// compare is the full comparison of a commit with its parent.
func (a *auditor) compare(c *gitx.Commit, oldReg, curReg, oldSum, curSum []byte) ([]diag.Diagnostic, error) {
	cmp := &comparison{
		ref:     fmt.Sprintf("its parent %.12s", firstOr(c.Parents)),
		prefix:  fmt.Sprintf("commit %.12s %q: ", c.Hash, c.Subject),
		related: []diag.Related{{Message: fmt.Sprintf("offending commit %s %q", c.Hash, c.Subject)}},
	}
	if oldReg == nil {
		return nil, nil // the registry starts here
	}
	pos := diag.Position{File: a.w.opts.Registry}
	if curReg == nil {
		var ds []diag.Diagnostic
		cmp.finding(&ds, pos, RuleRemoved, 0, "%s deleted, and every hook with it; restore it", a.w.relReg)
		return ds, nil
	}
	old, pds := registry.Parse(a.w.opts.Registry, oldReg)
	if len(pds) > 0 {
		return nil, nil // reported at the commit that broke it
	}
	cur, pds := registry.Parse(a.w.opts.Registry, curReg)
	if len(pds) > 0 {
		var ds []diag.Diagnostic
		cmp.finding(&ds, pds[0].Pos, RuleRegistry, 0, "the registry does not parse (%s), so its hooks cannot be checked: %s", pds[0].Rule, pds[0].Message)
		return ds, nil
	}
	oldSums, err := a.sums(c, c.Parents, oldSum)
	if err != nil {
		return nil, err
	}
	curSums, err := a.sums(c, nil, curSum)
	if err != nil {
		return nil, err
	}
	return compare(snapshot{old, oldSums.digest}, snapshot{cur, curSums.digest}, cmp), nil
}

// sums parses a hooks.sum of commit c (of its first parent when parents
// is given); one that does not parse is an error: its digests cannot be
// checked.
func (a *auditor) sums(c *gitx.Commit, parents []string, data []byte) (sums, error) {
	s := make(sums)
	lines, err := sumfile.Parse(a.w.relSum, data)
	if err != nil {
		at := c.Hash
		if len(parents) > 0 {
			at = parents[0]
		}
		return nil, fmt.Errorf("%w: %s at commit %.12s: %v", ErrBrokenReference, a.w.relSum, at, err)
	}
	s.add(lines)
	return s, nil
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return s[0]
}

// changed returns the bytes of old replaced in cur, in whole lines: old is
// old[:p] + removed + old[len(old)-s:], cur is old[:p] + inserted +
// old[len(old)-s:].
func changed(old, cur []byte) (p int, removed, inserted []byte) {
	n := min(len(old), len(cur))
	for p < n && old[p] == cur[p] {
		p++
	}
	p = bytes.LastIndexByte(old[:p], '\n') + 1
	s := 0
	for s < n-p && old[len(old)-1-s] == cur[len(cur)-1-s] {
		s++
	}
	// Start the common suffix at a line start of both.
	for s > 0 && (old[len(old)-s-1] != '\n' || cur[len(cur)-s-1] != '\n') {
		s--
	}
	return p, old[p : len(old)-s], cur[p : len(cur)-s]
}

var (
	hooksLine = regexp.MustCompile(`(?m)^hooks:[ \t]*(#.*)?\n`)
	itemLine  = regexp.MustCompile(`(?m)^( *)- `)
	numLine   = regexp.MustCompile(`(?m)^ *(?:- +)?num: *(\d+) *(?:#.*)?$`)
)

// addsOnTop reports whether cur is old with whole hook items inserted
// above the first hook, each with a num larger than the first hook's: the
// one change that needs no full comparison.
func addsOnTop(old, cur []byte) bool {
	if bytes.Equal(old, cur) {
		return true
	}
	if old == nil || cur == nil {
		return false
	}
	p, removed, inserted := changed(old, cur)
	if len(removed) > 0 {
		return false
	}
	h := hooksLine.FindIndex(old)
	if h == nil || p < h[1] {
		return false
	}
	first := itemLine.FindSubmatchIndex(old[h[1]:])
	if first == nil || p > h[1]+first[0] || !blankOrComments(old[h[1]:h[1]+first[0]]) {
		return false
	}
	indent := first[3] - first[2]
	next := itemLine.FindIndex(old[h[1]+first[1]:])
	top := old[h[1]+first[0]:]
	if next != nil {
		top = old[h[1]+first[0] : h[1]+first[1]+next[0]]
	}
	m := numLine.FindSubmatch(top)
	if m == nil {
		return false
	}
	topNum, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return false
	}
	// The inserted text must start with an item at the list's indentation
	// and hold nothing but complete items.
	start := itemLine.FindSubmatchIndex(inserted)
	if start == nil || start[3]-start[2] != indent || !blankOrComments(inserted[:start[0]]) {
		return false
	}
	for line := range bytes.Lines(inserted) {
		t := bytes.TrimLeft(line, " ")
		if len(bytes.TrimSpace(t)) == 0 || t[0] == '#' {
			continue
		}
		if n := len(line) - len(t); n < indent || n == indent && !bytes.HasPrefix(t, []byte("- ")) {
			return false
		}
	}
	var doc struct {
		Hooks []struct {
			Num int `yaml:"num"`
		} `yaml:"hooks"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(append([]byte("hooks:\n"), inserted...)))
	if err := dec.Decode(&doc); err != nil || len(doc.Hooks) == 0 {
		return false
	}
	for _, h := range doc.Hooks {
		if h.Num <= topNum {
			return false
		}
	}
	return true
}

func blankOrComments(b []byte) bool {
	for line := range bytes.Lines(b) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// appendsSum reports whether cur is old with lines of larger numbers
// appended.
func appendsSum(old, cur []byte) bool {
	if bytes.Equal(old, cur) {
		return true
	}
	if cur == nil {
		return false
	}
	p, removed, inserted := changed(old, cur)
	if len(removed) > 0 || p+len(inserted) != len(cur) {
		return false
	}
	last := 0
	if i := bytes.LastIndexByte(bytes.TrimSuffix(old, []byte("\n")), '\n'); len(old) > 0 {
		lines, err := sumfile.Parse("", old[i+1:])
		if err != nil || len(lines) != 1 {
			return false
		}
		last = lines[0].Num
	}
	lines, err := sumfile.Parse("", inserted)
	if err != nil || len(lines) == 0 {
		return false
	}
	for _, l := range lines {
		if l.Num <= last {
			return false
		}
		last = l.Num
	}
	return true
}
