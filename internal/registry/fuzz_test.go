package registry_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/registry"
	"go.yaml.in/yaml/v3"
)

// FuzzParseRegistry checks that Parse and Check never panic, that every
// diagnostic has a position in the file, and that InsertHook on a clean
// registry gives a registry with one hook more, or refuses only a hooks
// list written in a form it documents it cannot edit.
func FuzzParseRegistry(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("..", "..", "registry.yaml")); err == nil {
		f.Add(data)
	}
	for _, seed := range []string{
		valid, "", "#\n", "release: 1.0.0\nhooks: []\n", "release: 1.0.0\nhooks:\n", "\t- a\n",
		"release: 1.0.0\nhooks:\n  - &a {num: 1}\n  - *a\n", "release: 1.0.0\nhooks: [{num: 1, introduced_in: 1.0.0, allow_online: false, func: A}]\n",
		"release: 1.0.0\nhooks:\n  - num: 1\n    introduced_in: 1.0.0\n    allow_online: false\n    func: A\n---\nx: 1\n",
		"release: !!binary aGVsbG8=\nhooks: []\n", "<<: {release: 1.0.0}\nhooks: []\n", "release: 1.0.0\r\nhooks: []\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, ds := registry.Parse("registry.yaml", data)
		clean := len(ds) == 0
		ds = append(ds, registry.Check(file)...)
		for _, d := range ds {
			if d.Pos.File != "registry.yaml" || d.Pos.Line < 1 || d.Rule == "" || d.Message == "" {
				t.Fatalf("diagnostic without position, rule or message: %+v", d)
			}
		}
		if !clean {
			return
		}
		out, err := registry.InsertHook(data, registry.NewHook{Num: 1 << 20, IntroducedIn: "1.0.0", Func: "UpgradeFuzz"})
		if err != nil {
			if !uneditable(data, err) {
				t.Fatalf("InsertHook refused a clean registry: %v\n%s", err, data)
			}
			return
		}
		again, ds := registry.Parse("registry.yaml", out)
		if len(ds) > 0 || len(again.Hooks) != len(file.Hooks)+1 || again.Hooks[0].Func != "UpgradeFuzz" {
			t.Fatalf("InsertHook broke the registry:\n%s\n%v", out, ds)
		}
	})
}

// uneditable reports whether err is one of InsertHook's documented
// refusals of a hooks list it cannot edit in place, and the list of data
// is indeed written so: a non-empty flow list or a value that is not a
// list ("hooks is not a block list"), or a key or first item line holding
// more than InsertHook can keep (an anchor, a tag, a nested item).
func uneditable(data []byte, err error) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return false
	}
	root := doc.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "hooks" {
			list = root.Content[i+1]
		}
	}
	if list == nil {
		return false
	}
	empty := list.Kind == yaml.SequenceNode && len(list.Content) == 0 || list.Kind == yaml.ScalarNode && list.Tag == "!!null"
	msg := err.Error()
	switch {
	case strings.Contains(msg, "hooks is not a block list"):
		return !empty && (list.Kind != yaml.SequenceNode || list.Style&yaml.FlowStyle != 0)
	case strings.Contains(msg, "the first hook is not a block list item"):
		return list.Kind == yaml.SequenceNode && len(list.Content) > 0
	case strings.Contains(msg, "cannot edit"):
		return empty
	}
	return false
}
