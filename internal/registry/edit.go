package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NewHook is a hook to add with InsertHook.
type NewHook struct {
	Num          int
	IntroducedIn string
	AllowOnline  bool
	// Maintenance writes maintenance: true (a hook of a maintenance
	// branch, numbered in its line's range).
	Maintenance bool
	Func        string
}

// InsertHook returns data with h added as the first item of the hooks
// list, editing the text at the list's position so that every comment and
// the layout of the rest of the file are kept. The new item takes the
// indentation of the item below it; an empty list ("hooks: []" or
// "hooks:") becomes a block list indented by two spaces. data must parse
// (see Parse).
func InsertHook(data []byte, h NewHook) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("inserting hook %d: %w", h.Num, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("inserting hook: the registry is not a mapping")
	}
	root := doc.Content[0]
	var key, list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "hooks" {
			key, list = root.Content[i], root.Content[i+1]
		}
	}
	if key == nil {
		return nil, errors.New("inserting hook: the registry has no hooks list")
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	eol := "\n"
	if bytes.HasSuffix(lines[0], []byte("\r\n")) {
		eol = "\r\n"
	}
	switch {
	case list.Kind == yaml.SequenceNode && len(list.Content) > 0 && list.Style&yaml.FlowStyle == 0:
		first := list.Content[0]
		line := lines[first.Line-1]
		// The item's text before its first key: its indentation and "- ".
		prefix := string(line[:first.Column-1])
		if strings.TrimSpace(prefix) != "-" {
			return nil, fmt.Errorf("inserting hook %d: line %d: the first hook is not a block list item", h.Num, first.Line)
		}
		item := []byte(itemText(h, prefix, strings.Repeat(" ", len(prefix)), eol))
		return splice(lines, first.Line-1, item, false), nil
	case list.Kind == yaml.SequenceNode && len(list.Content) == 0 || list.Kind == yaml.ScalarNode && list.Tag == "!!null":
		keyLine := string(bytes.TrimRight(lines[key.Line-1], "\r\n"))
		indent := strings.Repeat(" ", key.Column-1)
		head := keyLine[:key.Column-1+len("hooks")]
		rest := strings.TrimSpace(keyLine[key.Column-1+len("hooks"):])
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
		rest = strings.TrimSpace(strings.TrimPrefix(rest, "[]"))
		comment := ""
		if strings.HasPrefix(rest, "#") {
			comment = "  " + rest
		} else if rest != "" {
			return nil, fmt.Errorf("inserting hook %d: line %d: cannot edit %q", h.Num, key.Line, keyLine)
		}
		text := head + ":" + comment + eol + itemText(h, indent+"  - ", indent+"    ", eol)
		return splice(lines, key.Line-1, []byte(text), true), nil
	}
	return nil, fmt.Errorf("inserting hook %d: line %d: hooks is not a block list; write it as \"hooks:\" followed by \"  - num: ...\" items", h.Num, key.Line)
}

// itemText is the YAML of a list item: first its prefix ("  - "), then
// each further key indented by indent; lines end with eol, the file's.
func itemText(h NewHook, prefix, indent, eol string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%snum: %d%s", prefix, h.Num, eol)
	fmt.Fprintf(&b, "%sintroduced_in: %s%s", indent, h.IntroducedIn, eol)
	fmt.Fprintf(&b, "%sallow_online: %s%s", indent, strconv.FormatBool(h.AllowOnline), eol)
	if h.Maintenance {
		fmt.Fprintf(&b, "%smaintenance: true%s", indent, eol)
	}
	fmt.Fprintf(&b, "%sfunc: %s%s", indent, h.Func, eol)
	return b.String()
}

// splice joins lines with text inserted before line at, or in its place
// with replace.
func splice(lines [][]byte, at int, text []byte, replace bool) []byte {
	var out bytes.Buffer
	for i, l := range lines {
		if i == at {
			out.Write(text)
			if replace {
				continue
			}
		}
		out.Write(l)
	}
	return out.Bytes()
}
