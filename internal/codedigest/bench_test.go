package codedigest_test

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/tools/go/callgraph/cha"
	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/ssa"
	"golang.org/x/tools/go/ssa/ssautil"

	"github.com/hookreg/hookreg/internal/codedigest"
)

// BenchmarkReachability measures the two ways of finding the code a hook
// reaches, on this repository's example hooks (./hooks/...): h3's rules
// over source (a scope read from every file, the digests of the three
// hooks, after the load hookgen does anyway: the hook packages and the
// module's packages they reach type-checked, dependencies from export
// data) beside golang.org/x/tools' call graph (every package of the
// program from source, SSA, CHA), the library the package doc weighs.
func BenchmarkReachability(b *testing.B) {
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	var h3, ssaTime time.Duration
	var funcs int
	for range b.N {
		start := time.Now()
		pkgs, err := packages.Load(&packages.Config{Mode: codedigest.LoadMode &^ packages.NeedDeps, Dir: root}, "./hooks/...")
		if err != nil {
			b.Fatal(err)
		}
		s, err := codedigest.NewScope(root)
		if err != nil {
			b.Fatal(err)
		}
		s.UsePackages(pkgs)
		for _, fn := range [][2]string{{"github.com/hookreg/hookreg/hooks/libfoo", "UpgradeLibFoo"}, {"github.com/hookreg/hookreg/hooks/libbar", "UpgradeLibBar"}, {"github.com/hookreg/hookreg/hooks", "UpgradeLibBaz"}} {
			if _, err := s.Compute(fn[0], fn[1]); err != nil {
				b.Fatal(err)
			}
		}
		h3 += time.Since(start)

		start = time.Now()
		all, err := packages.Load(&packages.Config{Mode: packages.LoadAllSyntax, Dir: root}, "./hooks/...")
		if err != nil {
			b.Fatal(err)
		}
		prog, _ := ssautil.AllPackages(all, ssa.InstantiateGenerics)
		prog.Build()
		cg := cha.CallGraph(prog)
		funcs = len(cg.Nodes)
		ssaTime += time.Since(start)
	}
	b.ReportMetric(h3.Seconds()/float64(b.N), "h3-s")
	b.ReportMetric(ssaTime.Seconds()/float64(b.N), "ssa-cha-s")
	b.ReportMetric(float64(ssaTime)/float64(h3), "ratio")
	b.ReportMetric(float64(funcs), "cha-nodes")
}
