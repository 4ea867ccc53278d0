package gen_test

import (
	"bytes"
	"flag"
	"go/format"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/gen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// input is a registry with hooks out of order, two in one sub-package,
// a package name clash, a minimum data version, docs that need flattening,
// and a hook with an earlier algorithm's digest and an amendment.
func input() gen.Input {
	return gen.Input{
		Package:        "generated",
		Source:         "registry.yaml",
		Product:        "mqtt-broker",
		Release:        "5.1.0",
		MinDataVersion: "4.4.0",
		Hooks: []gen.Hook{
			{Num: 100, IntroducedIn: "5.1.0", Name: "UpgradeLibBaz", PkgPath: "example.com/broker/hooks", PkgName: "hooks", Func: "UpgradeLibBaz", Digest: "h1:baz=", Doc: "Split ACL rules\n  into one table per tenant."},
			{Num: 98, IntroducedIn: "5.0.0", Name: "libfoo.UpgradeLibFoo", PkgPath: "example.com/broker/hooks/libfoo", PkgName: "libfoo", Func: "UpgradeLibFoo", Digest: "h2:foo2=",
				Earlier: []string{"h1:foo=->h2:foo1="}, Amendments: []hook.Amendment{{Old: "h2:foo1=", New: "h2:foo2=", Reason: "fix \"CVE-2026-1\""}}},
			{Num: 99, IntroducedIn: "5.0.1", AllowOnline: true, Name: "libfoo.UpgradeLibFooAgain", PkgPath: "example.com/broker/hooks/libfoo", PkgName: "libfoo", Func: "UpgradeLibFooAgain", Digest: "h1:foo2="},
			{Num: 101, IntroducedIn: "5.1.0", AllowOnline: true, Name: "v2/libfoo.UpgradeOther", PkgPath: "example.com/broker/hooks/v2/libfoo", PkgName: "libfoo", Func: "UpgradeOther", Digest: "h1:other="},
		},
	}
}

func TestGolden(t *testing.T) {
	files, err := gen.Generate(input())
	if err != nil {
		t.Fatal(err)
	}
	for name, golden := range map[string]string{gen.RegistryFile: "registry.go.golden", gen.SumFile: "hooks.sum.golden"} {
		path := filepath.Join("testdata", golden)
		if *update {
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(files[name], want) {
			t.Errorf("%s differs from %s (run go test -update if the change is intended):\n%s", name, path, files[name])
		}
	}
}

func TestGenerateProperties(t *testing.T) {
	in := input()
	files, err := gen.Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	src := files[gen.RegistryFile]
	if !strings.HasPrefix(string(src), "// "+gen.Header+"\n") {
		t.Errorf("registry.go does not start with the header:\n%s", src)
	}
	formatted, err := format.Source(src)
	if err != nil || !bytes.Equal(formatted, src) {
		t.Errorf("registry.go is not gofmt-clean (err %v)", err)
	}
	// Deterministic, whatever the order of the input.
	in.Hooks[0], in.Hooks[3] = in.Hooks[3], in.Hooks[0]
	again, err := gen.Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if !bytes.Equal(files[name], again[name]) {
			t.Errorf("%s depends on the order of the input", name)
		}
	}
	// The digest literal is hook.Registry.ComputeDigest of the values.
	reg := &hook.Registry{Product: in.Product, Release: in.Release, MinDataVersion: in.MinDataVersion}
	for _, num := range []int{98, 99, 100, 101} {
		for _, h := range in.Hooks {
			if h.Num == num {
				reg.Hooks = append(reg.Hooks, hook.Hook{Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Name, Digest: h.Digest})
			}
		}
	}
	if want := `Digest:         "` + reg.ComputeDigest() + `"`; !strings.Contains(string(src), want) {
		t.Errorf("registry.go lacks %s", want)
	}
}

func TestGenerateErrors(t *testing.T) {
	for name, mutate := range map[string]func(*gen.Input){
		"bad package":    func(in *gen.Input) { in.Package = "my-pkg" },
		"duplicate num":  func(in *gen.Input) { in.Hooks[1].Num = 100 },
		"bad func":       func(in *gen.Input) { in.Hooks[0].Func = "libfoo.Upgrade" },
		"no import path": func(in *gen.Input) { in.Hooks[0].PkgPath = "" },
	} {
		t.Run(name, func(t *testing.T) {
			in := input()
			mutate(&in)
			if _, err := gen.Generate(in); err == nil {
				t.Fatal("Generate accepted it")
			}
		})
	}
}
