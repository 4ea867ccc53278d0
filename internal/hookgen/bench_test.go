package hookgen

import (
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCheckVsVet runs "hookgen check" on this repository beside
// "go vet ./hooks/..." on the same tree in the same run, and reports both
// and their ratio (check over vet): package loading dominates both. go vet
// is measured as a user meets it, with its results cached by the go
// command after the first run.
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
	var tCheck, tVet time.Duration
	for b.Loop() {
		start := time.Now()
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
}
