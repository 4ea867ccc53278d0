package hookgen

import (
	"bytes"
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/hookreg/hookreg/internal/registry"
)

// stubFunc is the Go file hookgen new writes for a hook: the function with
// the hook signature, returning an error until it is written, so that an
// unwritten hook stops an upgrade instead of being recorded as applied.
func stubFunc(pkgName, name string, h registry.NewHook) ([]byte, error) {
	f := jen.NewFile(pkgName)
	f.ImportName(registry.HookPkgPath, "hook")
	mode := "offline only"
	if h.AllowOnline {
		mode = "online or offline"
	}
	f.Comment(fmt.Sprintf("%s is upgrade hook %d, introduced in %s; it runs %s, in one transaction.", name, h.Num, h.IntroducedIn, mode))
	f.Comment("Say here what it changes in the data of older releases: it never changes once released.")
	f.Func().Id(name).Params(
		jen.Id("ctx").Qual("context", "Context"),
		jen.Id("tx").Qual(registry.HookPkgPath, "Tx"),
	).Error().Block(
		jen.Return(jen.Qual("errors", "New").Call(jen.Lit(fmt.Sprintf("hook %d (%s) is not written yet", h.Num, h.Func)))),
	)
	return render(f, name+".go")
}

// stubTest is the test file hookgen new writes beside the hook: it runs
// the hook as the migrator does, with package hooktest, on a store to seed
// with data of the release before the hook, and fails until the hook is
// written (it returns its stub error) and then until the test checks what
// the hook changed.
func stubTest(pkgName, name string, h registry.NewHook) ([]byte, error) {
	const hooktestPath = "github.com/hookreg/hookreg/hooktest"
	f := jen.NewFile(pkgName)
	f.ImportName(registry.HookPkgPath, "hook")
	f.ImportName(hooktestPath, "hooktest")
	run := "Run"
	if h.AllowOnline {
		run = "RunOnline"
	}
	f.Comment(fmt.Sprintf("Test%s runs hook %d as the migrator does. It fails until the hook", name, h.Num))
	f.Comment("and this test are written: seed the store with data of the release before")
	f.Comment(fmt.Sprintf("%s (st.Put, st.WriteConfig, or hooktest.Load of a release fixture), then", h.IntroducedIn))
	f.Comment("check every record and file the hook changed (st.Get, st.Records, st.Config).")
	f.Func().Id("Test"+name).Params(jen.Id("t").Op("*").Qual("testing", "T")).Block(
		jen.Id("st").Op(":=").Qual(hooktestPath, "New").Call(jen.Id("t")),
		jen.Id("h").Op(":=").Qual(registry.HookPkgPath, "Hook").Values(
			jen.Id("Num").Op(":").Lit(h.Num),
			jen.Id("IntroducedIn").Op(":").Lit(h.IntroducedIn),
			jen.Id("AllowOnline").Op(":").Lit(h.AllowOnline),
			jen.Id("Name").Op(":").Lit(h.Func),
			jen.Id("Func").Op(":").Id(name),
		),
		jen.If(
			jen.Err().Op(":=").Id("st").Dot(run).Call(jen.Id("h")),
			jen.Err().Op("!=").Nil(),
		).Block(
			jen.Id("t").Dot("Fatalf").Call(jen.Lit(fmt.Sprintf("hook %d: %%v", h.Num)), jen.Err()),
		),
		jen.Id("t").Dot("Errorf").Call(jen.Lit(fmt.Sprintf("hook %d ran: now seed the data it upgrades and check what it changed", h.Num))),
	)
	return render(f, name+"_test.go")
}

func render(f *jen.File, name string) ([]byte, error) {
	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, fmt.Errorf("writing the stub %s: %w", name, err)
	}
	return buf.Bytes(), nil
}
