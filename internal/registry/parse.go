package registry

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"github.com/hookreg/hookreg/internal/diag"
)

// Rule ids of Parse: malformed registry files.
const (
	RuleEmpty       = "empty-file"
	RuleSyntax      = "yaml-syntax"
	RuleTab         = "tab"
	RuleUnknownKey  = "unknown-key"
	RuleDuplicate   = "duplicate-key"
	RuleWrongType   = "wrong-type"
	RuleMissingKey  = "missing-key"
	RuleMultipleDoc = "multiple-documents"
)

// The keys of registry.yaml, in the order they are documented.
var (
	fileKeys      = []string{"product", "release", "package", "min_data_version", "hooks"}
	hookKeys      = []string{"num", "introduced_in", "allow_online", "maintenance", "func", "doc", "amendments"}
	amendmentKeys = []string{"old", "new", "reason"}
)

// DefaultPackage is the hook package when registry.yaml names none.
const DefaultPackage = "./hooks"

// Parse parses the registry file data, named path in diagnostics. It is
// strict: unknown and duplicate keys, values of the wrong type, tabs in the
// indentation, aliases, a missing required key and an empty file are each a
// diagnostic with a position; nothing is silently defaulted except the
// optional keys product (left empty for the caller), package ("./hooks")
// and min_data_version (none). The returned File holds everything that
// parsed, even when there are diagnostics, so that the rules of Check can
// still run on it.
func Parse(path string, data []byte) (*File, []diag.Diagnostic) {
	p := &fileParser{f: &File{Path: path, Package: DefaultPackage}}
	p.tabs(data)
	if len(p.ds) > 0 {
		return p.f, p.ds
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(diag.Position{File: path, Line: 1, Col: 1}, RuleEmpty, 0, "the registry is empty: want the keys %s", strings.Join(fileKeys, ", "))
		} else {
			p.syntax(err)
		}
		return p.f, p.ds
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		p.errorf(p.pos(at), RuleMultipleDoc, 0, "a second YAML document; the registry is one document")
	case !errors.Is(err, io.EOF):
		p.syntax(err)
	}
	if len(doc.Content) == 0 {
		p.errorf(p.pos(&doc), RuleEmpty, 0, "the registry is empty: want the keys %s", strings.Join(fileKeys, ", "))
		return p.f, p.ds
	}
	p.file(doc.Content[0])
	return p.f, p.ds
}

type fileParser struct {
	f  *File
	ds []diag.Diagnostic
}

func (p *fileParser) errorf(pos diag.Position, rule string, hook int, format string, args ...any) {
	p.ds = append(p.ds, diag.Diagnostic{Pos: pos, Rule: rule, Hook: hook, Message: fmt.Sprintf(format, args...)})
}

func (p *fileParser) pos(n *yaml.Node) diag.Position {
	return diag.Position{File: p.f.Path, Line: max(n.Line, 1), Col: max(n.Column, 1)}
}

// tabs reports tabs in the indentation, which YAML forbids and which
// yaml.v3 reports without a column.
func (p *fileParser) tabs(data []byte) {
	for i, line := range bytes.Split(data, []byte("\n")) {
		indent := len(line) - len(bytes.TrimLeft(line, " \t"))
		if col := bytes.IndexByte(line[:indent], '\t'); col >= 0 {
			p.errorf(diag.Position{File: p.f.Path, Line: i + 1, Col: col + 1}, RuleTab, 0, "tab in the indentation; YAML indents with spaces only")
		}
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax turns a yaml.v3 error into a diagnostic at the line it names.
func (p *fileParser) syntax(err error) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	p.errorf(diag.Position{File: p.f.Path, Line: max(line, 1), Col: 1}, RuleSyntax, 0, "invalid YAML: %s", msg)
}

// field is a key of a mapping with its value.
type field struct {
	key, value *yaml.Node
}

// mapping checks that n is a mapping with known, unique keys and returns
// its fields by key. It reports the required keys that are missing at the
// mapping's position.
func (p *fileParser) mapping(n *yaml.Node, what string, hook int, known, required []string) map[string]field {
	if !p.kind(n, yaml.MappingNode, what, "a mapping", hook) {
		return nil
	}
	fields := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			p.errorf(p.pos(k), RuleWrongType, hook, "a key of %s is not a plain string", what)
			continue
		}
		if !slices.Contains(known, k.Value) {
			p.errorf(p.pos(k), RuleUnknownKey, hook, "unknown key %q in %s (want one of %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		if prev, ok := fields[k.Value]; ok {
			p.errorf(p.pos(k), RuleDuplicate, hook, "duplicate key %q in %s (first at line %d)", k.Value, what, prev.key.Line)
			continue
		}
		fields[k.Value] = field{k, v}
	}
	for _, key := range required {
		if _, ok := fields[key]; !ok {
			p.errorf(p.pos(n), RuleMissingKey, hook, "%s has no %q: it is required", what, key)
		}
	}
	return fields
}

// kind checks the node kind, refusing aliases, and reports a wrong type.
func (p *fileParser) kind(n *yaml.Node, kind yaml.Kind, what, want string, hook int) bool {
	if n.Kind == kind && (kind != yaml.ScalarNode || n.Tag != "!!null") {
		return true
	}
	got := map[yaml.Kind]string{
		yaml.DocumentNode: "a document", yaml.SequenceNode: "a list",
		yaml.MappingNode: "a mapping", yaml.ScalarNode: "a value", yaml.AliasNode: "an alias",
	}[n.Kind]
	if n.Kind == yaml.ScalarNode {
		got = fmt.Sprintf("%q", n.Value)
		if n.Tag == "!!null" {
			got = "empty"
		}
	}
	p.errorf(p.pos(n), RuleWrongType, hook, "%s is %s, want %s", what, got, want)
	return false
}

// str returns the string value of a scalar and its position, reporting
// other types (then the position is zero, so that Check skips it). With
// anyScalar, plain scalars that YAML would read as numbers (such as a
// version 5.1) are taken as written, to be judged by the version rules.
func (p *fileParser) str(n *yaml.Node, what string, hook int, anyScalar bool) (string, diag.Position, bool) {
	if !p.kind(n, yaml.ScalarNode, what, "a string", hook) {
		return "", diag.Position{}, false
	}
	if n.Tag != "!!str" && !(anyScalar && (n.Tag == "!!int" || n.Tag == "!!float")) {
		p.errorf(p.pos(n), RuleWrongType, hook, "%s is %s (%s), want a string", what, strconv.Quote(n.Value), strings.TrimPrefix(n.Tag, "!!"))
		return "", diag.Position{}, false
	}
	return n.Value, p.pos(n), true
}

func (p *fileParser) file(root *yaml.Node) {
	f := p.f
	fields := p.mapping(root, "the registry", 0, fileKeys, []string{"release", "hooks"})
	if fields == nil {
		return
	}
	if fd, ok := fields["product"]; ok {
		f.Product, f.ProductPos, _ = p.str(fd.value, "product", 0, false)
	}
	if fd, ok := fields["release"]; ok {
		f.Release, f.ReleasePos, _ = p.str(fd.value, "release", 0, true)
	}
	if fd, ok := fields["package"]; ok {
		f.Package, f.PackagePos, _ = p.str(fd.value, "package", 0, false)
	}
	if fd, ok := fields["min_data_version"]; ok {
		f.MinDataVersion, f.MinDataVersionPos, _ = p.str(fd.value, "min_data_version", 0, true)
	}
	fd, ok := fields["hooks"]
	if !ok {
		return
	}
	f.HooksPos = p.pos(fd.key)
	if !p.kind(fd.value, yaml.SequenceNode, "hooks", "a list of hooks", 0) {
		return
	}
	f.Hooks = make([]Hook, 0, len(fd.value.Content))
	for _, item := range fd.value.Content {
		if h, ok := p.hook(item); ok {
			f.Hooks = append(f.Hooks, h)
		}
	}
}

// hookNum returns the num of a hook item early, so that every diagnostic
// about the hook can name it; 0 when it has none.
func hookNum(item *yaml.Node) int {
	if item.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(item.Content); i += 2 {
		if item.Content[i].Value == "num" && item.Content[i+1].Tag == "!!int" {
			n, _ := strconv.Atoi(item.Content[i+1].Value)
			return n
		}
	}
	return 0
}

func (p *fileParser) hook(item *yaml.Node) (Hook, bool) {
	num := hookNum(item)
	fields := p.mapping(item, "a hook", num, hookKeys, []string{"num", "introduced_in", "allow_online", "func"})
	if fields == nil {
		return Hook{}, false
	}
	h := Hook{Pos: p.pos(item)}
	if fd, ok := fields["num"]; ok {
		if p.kind(fd.value, yaml.ScalarNode, "num", "an integer", num) {
			n, err := strconv.Atoi(fd.value.Value)
			if fd.value.Tag != "!!int" || err != nil {
				p.errorf(p.pos(fd.value), RuleWrongType, 0, "num %q is not a decimal integer", fd.value.Value)
			} else {
				h.Num, h.NumPos = n, p.pos(fd.value)
			}
		}
	}
	if fd, ok := fields["introduced_in"]; ok {
		h.IntroducedIn, h.IntroducedInPos, _ = p.str(fd.value, "introduced_in", num, true)
		if v, err := semver.StrictNewVersion(h.IntroducedIn); err == nil {
			h.Version = v
		}
	}
	if fd, ok := fields["allow_online"]; ok {
		if p.kind(fd.value, yaml.ScalarNode, "allow_online", "true or false", num) {
			if fd.value.Tag != "!!bool" || fd.value.Decode(&h.AllowOnline) != nil {
				p.errorf(p.pos(fd.value), RuleWrongType, num, "allow_online is %q, want true or false", fd.value.Value)
			} else {
				h.AllowOnlinePos = p.pos(fd.value)
			}
		}
	}
	if fd, ok := fields["maintenance"]; ok {
		if p.kind(fd.value, yaml.ScalarNode, "maintenance", "true or false", num) {
			if fd.value.Tag != "!!bool" || fd.value.Decode(&h.Maintenance) != nil {
				p.errorf(p.pos(fd.value), RuleWrongType, num, "maintenance is %q, want true or false", fd.value.Value)
			} else {
				h.MaintenancePos = p.pos(fd.value)
			}
		}
	}
	if fd, ok := fields["func"]; ok {
		h.Func, h.FuncPos, _ = p.str(fd.value, "func", num, false)
	}
	if fd, ok := fields["doc"]; ok {
		h.Doc, _, _ = p.str(fd.value, "doc", num, false)
	}
	if fd, ok := fields["amendments"]; ok && p.kind(fd.value, yaml.SequenceNode, "amendments", "a list of {old, new, reason}", num) {
		for _, a := range fd.value.Content {
			if am, ok := p.amendment(a, num); ok {
				h.Amendments = append(h.Amendments, am)
			}
		}
	}
	return h, true
}

func (p *fileParser) amendment(n *yaml.Node, num int) (Amendment, bool) {
	fields := p.mapping(n, "an amendment", num, amendmentKeys, amendmentKeys)
	if fields == nil {
		return Amendment{}, false
	}
	a := Amendment{Pos: p.pos(n)}
	if fd, ok := fields["old"]; ok {
		a.Old, _, _ = p.str(fd.value, "old", num, false)
	}
	if fd, ok := fields["new"]; ok {
		a.New, _, _ = p.str(fd.value, "new", num, false)
	}
	if fd, ok := fields["reason"]; ok {
		a.Reason, _, _ = p.str(fd.value, "reason", num, false)
	}
	return a, true
}
