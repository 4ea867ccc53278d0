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
// 1,000 and 10,000 hooks in the same run and reports the cost per hook of
// each; "ratio" is the per-hook cost at 10,000 over that at 1,000: about 1
// when the work is linear.
func BenchmarkParseCheck(b *testing.B) {
	small, large := synthetic(1000), synthetic(10000)
	run := func(data []byte, hooks int) time.Duration {
		start := time.Now()
		f, ds := registry.Parse("registry.yaml", data)
		ds = append(ds, registry.Check(f)...)
		if len(ds) > 0 || len(f.Hooks) != hooks {
			b.Fatalf("synthetic registry of %d hooks: %d hooks, %v", hooks, len(f.Hooks), ds[:min(len(ds), 3)])
		}
		return time.Since(start)
	}
	var tSmall, tLarge time.Duration
	for b.Loop() {
		tSmall += run(small, 1000)
		tLarge += run(large, 10000)
	}
	perSmall := float64(tSmall.Nanoseconds()) / float64(b.N) / 1000
	perLarge := float64(tLarge.Nanoseconds()) / float64(b.N) / 10000
	b.ReportMetric(perLarge, "ns/hook")
	b.ReportMetric(perSmall, "ns/hook-at-1k")
	b.ReportMetric(perLarge/perSmall, "ratio")
}
