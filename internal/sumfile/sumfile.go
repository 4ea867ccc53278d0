// Package sumfile reads and writes generated/hooks.sum, the code digests of
// the hooks, one line a hook, sorted by number:
//
//	98 libfoo.UpgradeLibFoo h1:2T4l...=
//	99 libbar.UpgradeLibBar h1:Qm9v...=
//	100 UpgradeLibBaz h1:x1Yz...=
//
// The "h2:" prefix names the digest algorithm (as in go.sum), so that a
// new algorithm can be introduced without false alarms. A line may carry,
// after the digest, pairs OLD->NEW: the digest OLD of an earlier algorithm
// and the digest NEW of the same code under the current one, recorded when
// hookgen generate changed the algorithm and found the code unchanged:
//
//	98 libfoo.UpgradeLibFoo h2:Zx3c...= h1:2T4l...=->h2:Zx3c...=
package sumfile

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Line is one hook's entry.
type Line struct {
	Num    int
	Name   string
	Digest string
	// Earlier are the OLD->NEW pairs of digests of earlier algorithms.
	Earlier []string
}

// Format returns the file content for lines, sorted by number.
func Format(lines []Line) []byte {
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b Line) int { return cmp.Compare(a.Num, b.Num) })
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "%d %s %s", l.Num, l.Name, l.Digest)
		for _, e := range l.Earlier {
			fmt.Fprintf(&b, " %s", e)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Parse parses the content of a hooks.sum file named name.
func Parse(name string, data []byte) ([]Line, error) {
	var lines []Line
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%s:%d: want NUM NAME DIGEST [OLD->NEW]..., got %q", name, n, sc.Text())
		}
		num, err := strconv.Atoi(f[0])
		if err != nil || num <= 0 {
			return nil, fmt.Errorf("%s:%d: hook number %q is not a positive integer", name, n, f[0])
		}
		if !strings.Contains(f[2], ":") {
			return nil, fmt.Errorf("%s:%d: digest %q has no algorithm prefix", name, n, f[2])
		}
		for _, e := range f[3:] {
			old, cur, ok := strings.Cut(e, "->")
			if !ok || !strings.Contains(old, ":") || !strings.Contains(cur, ":") {
				return nil, fmt.Errorf("%s:%d: %q is not a pair OLD->NEW of digests", name, n, e)
			}
		}
		lines = append(lines, Line{Num: num, Name: f[1], Digest: f[2], Earlier: f[3:]})
	}
	return lines, sc.Err()
}
