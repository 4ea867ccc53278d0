package backup

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// mountPoints returns the mount points the process's mount table lists
// (/proc/self/mountinfo), nil when it cannot be read. With them,
// mountUnder finds what a comparison of device numbers cannot: a bind
// mount of a directory of the same file system (a secret directory bound
// into the configuration directory), whose files a removal of the
// directory would delete at their source.
func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 5 {
			points = append(points, unescapeMountinfo(fields[4]))
		}
	}
	return points
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// path in /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
