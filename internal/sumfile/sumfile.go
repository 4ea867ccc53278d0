// Package sumfile reads and writes generated/hooks.sum, the code digests of
// the hooks, one line a hook, sorted by number:
//
//	98 libfoo.UpgradeLibFoo h1:2T4l...=
//	99 libbar.UpgradeLibBar h1:Qm9v...=
//	100 UpgradeLibBaz h1:x1Yz...=
//
// The "h1:" prefix names the digest algorithm (as in go.sum), so that a
// future algorithm can be introduced without false alarms.
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
}

// Format returns the file content for lines, sorted by number.
func Format(lines []Line) []byte {
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b Line) int { return cmp.Compare(a.Num, b.Num) })
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "%d %s %s\n", l.Num, l.Name, l.Digest)
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
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want NUM NAME DIGEST, got %q", name, n, sc.Text())
		}
		num, err := strconv.Atoi(f[0])
		if err != nil || num <= 0 {
			return nil, fmt.Errorf("%s:%d: hook number %q is not a positive integer", name, n, f[0])
		}
		if !strings.Contains(f[2], ":") {
			return nil, fmt.Errorf("%s:%d: digest %q has no algorithm prefix", name, n, f[2])
		}
		lines = append(lines, Line{Num: num, Name: f[1], Digest: f[2]})
	}
	return lines, sc.Err()
}
