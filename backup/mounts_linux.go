package backup

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountUnder returns the first mount point at or below p that the
// process's mount table lists (/proc/self/mountinfo), as a path under p,
// or "" when there is none or the table cannot be read. It finds what a
// comparison of device numbers cannot: a bind mount of a directory of
// the same file system (a secret directory bound into the configuration
// directory), whose files a removal of the directory would delete at
// their source.
//
// A symbolic link is not followed: removing the directory removes the
// link, not what it points to (a secret linked from /run/secrets).
func mountUnder(p string) string {
	if info, err := os.Lstat(p); err != nil || info.Mode()&os.ModeSymlink != 0 {
		return ""
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return ""
	}
	real, err := filepath.Abs(filepath.Join(dir, filepath.Base(p)))
	if err != nil {
		return ""
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == real {
			return p
		}
		if rel, ok := strings.CutPrefix(mp, real+"/"); ok {
			return filepath.Join(p, rel)
		}
	}
	return ""
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
