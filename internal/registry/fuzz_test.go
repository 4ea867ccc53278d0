package registry_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hookreg/hookreg/internal/registry"
)

// FuzzParseRegistry checks that Parse and Check never panic, that every
// diagnostic has a position in the file, and that InsertHook on a clean
// registry gives a registry with one hook more.
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
			return
		}
		again, ds := registry.Parse("registry.yaml", out)
		if len(ds) > 0 || len(again.Hooks) != len(file.Hooks)+1 || again.Hooks[0].Func != "UpgradeFuzz" {
			t.Fatalf("InsertHook broke the registry:\n%s\n%v", out, ds)
		}
	})
}
