package lint_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/dirtest"
	"github.com/hookreg/hookreg/internal/gen"
	"github.com/hookreg/hookreg/internal/hookgen"
	"github.com/hookreg/hookreg/internal/lint"
	"github.com/hookreg/hookreg/internal/registry"
)

// gitEnv is a host-independent git environment.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@example.com", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
		"GIT_COMMITTER_NAME=c", "GIT_COMMITTER_EMAIL=c@example.com", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z")
}

func gitCmd(tb testing.TB, dir string, stdin io.Reader, args ...string) {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	cmd.Stdin = stdin
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func hookItem(n int) string {
	return fmt.Sprintf("  - num: %d\n    introduced_in: 1.0.0\n    allow_online: true\n    func: UpgradeH%d\n", n, n)
}

func sumLine(n int) string {
	return fmt.Sprintf("%d UpgradeH%d h2:%043d=\n", n, n, n)
}

// historyRepo builds, with git fast-import, a repository of n commits, the
// k-th adding hook k on top of registry.yaml and its line to hooks.sum.
func historyRepo(b *testing.B, n int) string {
	dir := b.TempDir()
	gitCmd(b, dir, nil, "init", "-q", "-b", "main")
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		var items []string // newest last
		var sum strings.Builder
		for k := 1; k <= n; k++ {
			items = append(items, hookItem(k))
			sum.WriteString(sumLine(k))
			var reg strings.Builder
			reg.WriteString("release: 1.0.0\nhooks:\n")
			for i := len(items) - 1; i >= 0; i-- {
				reg.WriteString(items[i])
			}
			msg := fmt.Sprintf("add hook %d", k)
			fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter c <c@example.com> %d +0000\ndata %d\n%s\n", k, 1767225600+k, len(msg), msg)
			if k > 1 {
				fmt.Fprintf(w, "from :%d\n", k-1)
			}
			fmt.Fprintf(w, "M 100644 inline registry.yaml\ndata %d\n%s\n", reg.Len(), reg.String())
			fmt.Fprintf(w, "M 100644 inline generated/hooks.sum\ndata %d\n%s\n", sum.Len(), sum.String())
		}
		w.WriteString("done\n")
		pw.CloseWithError(w.Flush())
	}()
	gitCmd(b, dir, pr, "fast-import", "--quiet", "--done")
	return dir
}

// BenchmarkAudit runs lint.Audit (hookgen audit) on a history of 5,000
// commits each adding one hook, beside "git log -p" of the same files in
// the same run; ratio = audit time / git log -p time (goal <= 2).
func BenchmarkAudit(b *testing.B) {
	dir := historyRepo(b, 5000)
	opts := lint.Options{Registry: filepath.Join(dir, "registry.yaml"), ModuleDir: dir}
	var auditTime, logTime time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		ds, err := lint.Audit(context.Background(), opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) != 0 {
			b.Fatalf("audit of a clean history found %v", ds[0].Text())
		}
		auditTime += time.Since(start)

		start = time.Now()
		cmd := exec.Command("git", "log", "-p", "--", "registry.yaml", "generated/hooks.sum")
		cmd.Dir = dir
		cmd.Env = gitEnv()
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		logTime += time.Since(start)
	}
	b.ReportMetric(auditTime.Seconds()/float64(b.N), "audit-s")
	b.ReportMetric(logTime.Seconds()/float64(b.N), "gitlog-s")
	b.ReportMetric(float64(auditTime)/float64(logTime), "ratio")
}

// BenchmarkLint runs lint.Lint (hookgen lint) on a 2,000-hook registry
// against one release tag, beside "go vet ./..." of the same module in the
// same run (ratio-vet = lint over vet; goal <= 1.5), and reports where the
// time goes: loading and type-checking the packages, computing the
// digests, and the rest (parsing the registry, comparing, and what git
// adds beyond the load it runs beside; rest-s is negative when the load
// ran slower alone than within lint). Then the helper every hook calls is
// changed, with a text of its own in every iteration (so that neither the
// go command's build cache nor vet's cached results serve the changed
// package), so that lint flags every hook (each finding names the changed
// declaration, from the tag's tree loaded once): flagged-s, and
// ratio-flagged over go vet of the changed module (vet-flagged-s; goal <=
// 2). go vet caches its results: vet-s is a cached run, vet-flagged-s not.
//
// Two shapes of the module: hooks-only, the hook package alone; and
// product, the module as a product has it after hookgen init and
// generate: generated/registry.go imports the hook package (so that vet
// ./... compiles the hook package for it when it changed), and
// cmd/migrator/main.go links the migrator (so that vet ./... checks its
// cached results for every package the migrator imports). The module is
// set up under GOFLAGS=-mod=mod and measured under the go command's
// default, -mod=readonly, as a product's CI runs.
func BenchmarkLint(b *testing.B) {
	b.Run("shape=hooks-only", func(b *testing.B) { benchLint(b, false) })
	b.Run("shape=product", func(b *testing.B) { benchLint(b, true) })
}

func benchLint(b *testing.B, product bool) {
	const n = 2000
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.Setenv("GOFLAGS", "-mod=mod")
	b.Setenv("GOPROXY", "off")
	b.Setenv("GOWORK", "off")
	var reg, src strings.Builder
	reg.WriteString("release: 1.0.0\nhooks:\n")
	for k := n; k >= 1; k-- {
		reg.WriteString(hookItem(k))
	}
	src.WriteString("package hooks\n\nimport (\n\t\"context\"\n\n\t\"github.com/hookreg/hookreg/hook\"\n)\n\nfunc helper(tx hook.Tx, name string) error {\n\t_, err := tx.Table(name)\n\treturn err\n}\n")
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&src, "\n// UpgradeH%d is hook %d.\nfunc UpgradeH%d(ctx context.Context, tx hook.Tx) error { return helper(tx, %q) }\n", k, k, k, fmt.Sprint("t", k))
	}
	files := map[string]string{
		"go.mod":         fmt.Sprintf("module example.com/big\n\ngo 1.26\n\nrequire github.com/hookreg/hookreg v0.0.0\n\nreplace github.com/hookreg/hookreg => %s\n", root),
		"registry.yaml":  reg.String(),
		"hooks/hooks.go": src.String(),
	}
	// The checksums of hookreg's own requirements, which the migrator
	// main imports (GOPROXY is off).
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		b.Fatal(err)
	}
	files["go.sum"] = string(sums)
	if product {
		// What hookgen init makes first: registry.yaml, hooks/doc.go,
		// generated/ and the migrator main, cmd/migrator/main.go.
		dirtest.Write(b, dir, map[string]string{"go.mod": files["go.mod"]})
		b.Chdir(dir)
		var out bytes.Buffer
		if code := hookgen.Main([]string{"init"}, nil, &out, &out); code != 0 {
			b.Fatalf("hookgen init: exit %d\n%s", code, out.String())
		}
		delete(files, "go.mod") // hookgen init added its tool line
	}
	dirtest.Write(b, dir, files)
	f, ds := registry.Parse("registry.yaml", []byte(reg.String()))
	if len(ds) > 0 {
		b.Fatal(ds[0].Text())
	}
	funcs, ds, err := registry.LoadFuncs(dir, f)
	if err != nil || len(ds) > 0 {
		b.Fatalf("loading: %v %v", err, ds)
	}
	digests, err := funcs.Digests(f)
	if err != nil {
		b.Fatal(err)
	}
	// The generated files, as hookgen generate writes them (hooks.sum
	// alone for the hooks-only shape).
	in := gen.Input{Package: "generated", Source: "registry.yaml", Product: funcs.Module, Release: f.Release}
	for i, h := range f.Hooks {
		fn := funcs.Funcs[i]
		in.Hooks = append(in.Hooks, gen.Hook{Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Func,
			PkgPath: fn.Pkg().Path(), PkgName: fn.Pkg().Name(), Func: fn.Name(), Digest: digests[i].Digest})
	}
	out, err := gen.Generate(in)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "generated"), 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range out {
		if name == gen.RegistryFile && !product {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "generated", name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// go.mod as -mod=mod completes it, committed; the runs measured
	// then use the go command's default, -mod=readonly, as a product's
	// CI does (and the lint lists its packages at the same time, which
	// it does not where the go command may rewrite go.mod).
	settle := exec.Command("go", "list", "-deps", "./...")
	settle.Dir = dir
	if out, err := settle.CombinedOutput(); err != nil {
		b.Fatalf("go list: %v\n%s", err, out)
	}
	b.Setenv("GOFLAGS", "")
	gitCmd(b, dir, nil, "init", "-q", "-b", "main")
	gitCmd(b, dir, nil, "add", "-A")
	gitCmd(b, dir, nil, "commit", "-q", "-m", "2000 hooks")
	gitCmd(b, dir, nil, "tag", "v1.0.0")
	b.Chdir(dir)

	vet := func() {
		cmd := exec.Command("go", "vet", "./...")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go vet: %v\n%s", err, out)
		}
	}
	vet()
	// run makes the changed helper's text differ from every earlier
	// run's, this process's or another's, so that the build cache has
	// neither its compilation nor vet's result.
	run := time.Now().UnixNano()
	var total, load, digest, vetTime, flagged, vetFlagged time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		ds, err := lint.Lint(context.Background(), lint.Options{Registry: "registry.yaml", ModuleDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) > 0 {
			b.Fatalf("lint of an unchanged registry found %s", ds[0].Text())
		}
		total += time.Since(start)

		start = time.Now()
		funcs, _, err := registry.LoadFuncs(dir, f)
		if err != nil {
			b.Fatal(err)
		}
		load += time.Since(start)
		start = time.Now()
		if _, err := funcs.Digests(f); err != nil {
			b.Fatal(err)
		}
		digest += time.Since(start)
		start = time.Now()
		vet()
		vetTime += time.Since(start)

		changed := strings.Replace(src.String(), "return err\n}", fmt.Sprintf("return fmt.Errorf(\"table %%s (%d-%d): %%w\", name, err)\n}", run, i), 1)
		changed = strings.Replace(changed, "import (\n", "import (\n\t\"fmt\"\n", 1)
		if err := os.WriteFile(filepath.Join(dir, "hooks", "hooks.go"), []byte(changed), 0o644); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		ds, err = lint.Lint(context.Background(), lint.Options{Registry: "registry.yaml", ModuleDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		flagged += time.Since(start)
		start = time.Now()
		vet()
		vetFlagged += time.Since(start)
		if len(ds) != n || !strings.Contains(ds[0].Message, "hooks/hooks.go: func helper") {
			b.Fatalf("lint of a changed helper: %d findings, want %d naming func helper", len(ds), n)
		}
		if err := os.WriteFile(filepath.Join(dir, "hooks", "hooks.go"), []byte(src.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(per(total), "lint-s")
	b.ReportMetric(per(load), "load-s")
	b.ReportMetric(per(digest), "digests-s")
	b.ReportMetric(per(total-load-digest), "rest-s")
	b.ReportMetric(per(vetTime), "vet-s")
	b.ReportMetric(float64(total)/float64(vetTime), "ratio-vet")
	b.ReportMetric(per(flagged), "flagged-s")
	b.ReportMetric(per(vetFlagged), "vet-flagged-s")
	b.ReportMetric(float64(flagged)/float64(vetFlagged), "ratio-flagged")
}
