package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/registry"
)

// synthetic returns a valid registry of n hooks, newest first, spread over
// releases so that every rule has work to do.
func synthetic(n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# synthetic registry\nproduct: bench\nrelease: %d.0.0\nhooks:\n", n/100+1)
	for num := n; num >= 1; num-- {
		minor, patch := (num/10)%10, num%10
		online := patch > 0
		fmt.Fprintf(&b, "  - num: %d\n    introduced_in: %d.%d.%d\n    allow_online: %t\n    func: lib%d.Upgrade%d\n    doc: Hook number %d.\n",
			num, num/100, minor, patch, online, num%50, num, num)
	}
	return []byte(b.String())
}

// BenchmarkParseCheck measures Parse and Check on synthetic registries of
// 1,000, 10,000 and 20,000 hooks in the same run and reports the cost per
// hook at 10,000 (ns/hook) and at the other sizes. "ratio" is the per-hook
// cost at 10,000 over that at 1,000, "ratio-20k" at 20,000 over 10,000:
// both about 1 when the work is linear. (At 10,000 hooks the node tree
// outgrows the initial heap and the garbage collector starts to run, which
// alone can double the per-hook cost on a busy machine; from 10,000 to
// 20,000 it stays in that regime.)
func BenchmarkParseCheck(b *testing.B) {
	sizes := []int{1000, 10000, 20000}
	data := make([][]byte, len(sizes))
	for i, n := range sizes {
		data[i] = synthetic(n)
	}
	total := make([]time.Duration, len(sizes))
	for b.Loop() {
		for i, n := range sizes {
			start := time.Now()
			f, ds := registry.Parse("registry.yaml", data[i])
			ds = append(ds, registry.Check(f)...)
			total[i] += time.Since(start)
			if len(ds) > 0 || len(f.Hooks) != n {
				b.Fatalf("synthetic registry of %d hooks: %d hooks, %v", n, len(f.Hooks), ds[:min(len(ds), 3)])
			}
		}
	}
	per := make([]float64, len(sizes))
	for i, n := range sizes {
		per[i] = float64(total[i].Nanoseconds()) / float64(b.N) / float64(n)
	}
	b.ReportMetric(per[1], "ns/hook")
	b.ReportMetric(per[0], "ns/hook-at-1k")
	b.ReportMetric(per[2], "ns/hook-at-20k")
	b.ReportMetric(per[1]/per[0], "ratio")
	b.ReportMetric(per[2]/per[1], "ratio-20k")
}
