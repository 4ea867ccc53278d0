// Package diag is the one diagnostic type of hookgen, and its three output
// formats:
//
//	text    registry.yaml:12:3: hook 98: introduced_in changed from "5.0.0" to "5.0.1" [immutable-version]
//	json    one JSON object per line: {"file":"registry.yaml","line":12,"col":3,"rule":"immutable-version","hook":98,"message":"...","related":[...]}
//	github  ::error file=registry.yaml,line=12,col=3,title=immutable-version::hook 98: introduced_in changed ...
//
// Diagnostics are written sorted by position and rule, duplicates removed.
package diag

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Position is a place in a file; Line and Col count from 1, 0 when unknown.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// String formats p as FILE:LINE:COL, leaving out what is unknown.
func (p Position) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Related is additional information attached to a diagnostic, such as the
// commit and tag where a hook landed.
type Related struct {
	Pos     Position `json:"pos,omitzero"`
	Message string   `json:"message"`
}

// Diagnostic is one finding.
type Diagnostic struct {
	Pos Position
	// Rule is the rule id, such as "num-order".
	Rule string
	// Hook is the hook number the finding is about; 0 for none.
	Hook int
	// Message says what is wrong, with old and new values, and what to do.
	Message string
	Related []Related
}

// Text returns the diagnostic in the go vet form.
func (d Diagnostic) Text() string {
	return fmt.Sprintf("%s: %s [%s]", d.Pos, d.fullMessage(), d.Rule)
}

func (d Diagnostic) fullMessage() string {
	if d.Hook != 0 {
		return fmt.Sprintf("hook %d: %s", d.Hook, d.Message)
	}
	return d.Message
}

// Sort sorts ds by file, line, column, rule and message and removes
// duplicates.
func Sort(ds []Diagnostic) []Diagnostic {
	slices.SortStableFunc(ds, compare)
	return slices.CompactFunc(ds, func(a, b Diagnostic) bool { return compare(a, b) == 0 })
}

func compare(a, b Diagnostic) int {
	return cmp.Or(
		cmp.Compare(a.Pos.File, b.Pos.File),
		cmp.Compare(a.Pos.Line, b.Pos.Line),
		cmp.Compare(a.Pos.Col, b.Pos.Col),
		cmp.Compare(a.Rule, b.Rule),
		cmp.Compare(a.Hook, b.Hook),
		cmp.Compare(a.Message, b.Message),
	)
}

// Formats lists the names Write accepts.
var Formats = []string{"text", "json", "github"}

// ValidFormat reports whether f names an output format.
func ValidFormat(f string) bool { return slices.Contains(Formats, f) }

type jsonDiagnostic struct {
	File    string    `json:"file"`
	Line    int       `json:"line"`
	Col     int       `json:"col"`
	Rule    string    `json:"rule"`
	Hook    int       `json:"hook,omitempty"`
	Message string    `json:"message"`
	Related []Related `json:"related,omitempty"`
}

// Write sorts ds and writes them to w in format (text, json or github).
func Write(w io.Writer, format string, ds []Diagnostic) error {
	ds = Sort(ds)
	switch format {
	case "text":
		for _, d := range ds {
			if _, err := fmt.Fprintln(w, d.Text()); err != nil {
				return err
			}
			for _, r := range d.Related {
				if _, err := fmt.Fprintf(w, "\t%s\n", relatedText(r)); err != nil {
					return err
				}
			}
		}
	case "json":
		enc := json.NewEncoder(w)
		for _, d := range ds {
			if err := enc.Encode(jsonDiagnostic{d.Pos.File, d.Pos.Line, d.Pos.Col, d.Rule, d.Hook, d.Message, d.Related}); err != nil {
				return err
			}
		}
	case "github":
		for _, d := range ds {
			msg := d.fullMessage()
			for _, r := range d.Related {
				msg += "\n" + relatedText(r)
			}
			props := "file=" + escapeProperty(d.Pos.File)
			if d.Pos.Line > 0 {
				props += fmt.Sprintf(",line=%d", d.Pos.Line)
			}
			if d.Pos.Col > 0 {
				props += fmt.Sprintf(",col=%d", d.Pos.Col)
			}
			props += ",title=" + escapeProperty(d.Rule)
			if _, err := fmt.Fprintf(w, "::error %s::%s\n", props, escapeData(msg)); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	return nil
}

func relatedText(r Related) string {
	if r.Pos.File == "" {
		return r.Message
	}
	return r.Pos.String() + ": " + r.Message
}

// escapeData escapes a workflow command's message as the GitHub Actions
// toolkit does.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
