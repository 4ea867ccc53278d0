package hookgen

import (
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/codedigest"
)

// BenchmarkCheckVsVet runs "hookgen check" on this repository beside
// "go vet ./hooks/..." on the same tree in the same run, and reports both
// and their ratio (check over vet): package loading dominates both. go vet
// is measured as a user meets it, with its results cached by the go
// command after the first run. The h1 digests (the algorithm before h2) are
// computed in the same run: today-s = check - h2 digests + h1 digests is
// the check before h2, and ratio-today = check-s over it (goal <= 1.5).
func BenchmarkCheckVsVet(b *testing.B) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		b.Fatal(err)
	}
	reg := filepath.Join(root, "registry.yaml")
	vet := func() {
		cmd := exec.Command("go", "vet", "./hooks/...")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("go vet: %v\n%s", err, out)
		}
	}
	vet()
	var tCheck, tVet, tH2, tH1 time.Duration
	for b.Loop() {
		c, ds, err := checkRegistry(registryFlag{path: reg})
		if err != nil || len(ds) > 0 {
			b.Fatalf("checking the registry: %v %v", err, ds)
		}
		start := time.Now()
		if _, err := c.funcs.Digests(c.reg); err != nil {
			b.Fatal(err)
		}
		tH2 += time.Since(start)
		start = time.Now()
		for i := range c.reg.Hooks {
			if _, err := c.funcs.Digest(c.reg, i, codedigest.PrefixH1); err != nil {
				b.Fatal(err)
			}
		}
		tH1 += time.Since(start)
		start = time.Now()
		if code := Main([]string{"check", "--registry", reg}, nil, io.Discard, io.Discard); code != 0 {
			b.Fatalf("hookgen check: exit %d", code)
		}
		tCheck += time.Since(start)
		start = time.Now()
		vet()
		tVet += time.Since(start)
	}
	b.ReportMetric(tCheck.Seconds()/float64(b.N), "check-s")
	b.ReportMetric(tVet.Seconds()/float64(b.N), "vet-s")
	b.ReportMetric(float64(tCheck)/float64(tVet), "ratio")
	today := tCheck - tH2 + tH1
	b.ReportMetric(today.Seconds()/float64(b.N), "today-s")
	b.ReportMetric(float64(tCheck)/float64(today), "ratio-today")
}
