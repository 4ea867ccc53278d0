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

// stubTest is the test file hookgen new writes beside the hook: it fails
// while the hook returns its stub error, and, since it hands the hook no
// transaction, keeps failing once the hook uses one, until it is replaced
// by a test that seeds a store and checks what the hook changed.
func stubTest(pkgName, name string, h registry.NewHook) ([]byte, error) {
	f := jen.NewFile(pkgName)
	f.Comment(fmt.Sprintf("Test%s fails until hook %d and its test are written: replace it with a", name, h.Num))
	f.Comment("test that seeds a store with data of the release before " + h.IntroducedIn + ", runs the hook")
	f.Comment("in a transaction and checks every record it changed.")
	f.Func().Id("Test" + name).Params(jen.Id("t").Op("*").Qual("testing", "T")).Block(
		jen.If(
			jen.Err().Op(":=").Id(name).Call(jen.Qual("context", "Background").Call(), jen.Nil()),
			jen.Err().Op("!=").Nil(),
		).Block(
			jen.Id("t").Dot("Fatalf").Call(jen.Lit(fmt.Sprintf("hook %d: %%v", h.Num)), jen.Err()),
		),
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
