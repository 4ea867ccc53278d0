// Package sha256sum reads and writes checksum lists in the format of the
// sha256sum command ("<hex sha256>  <name>" a line), so that
// "sha256sum -c FILE" checks them:
//
//	sum, err := sha256sum.File("dist/5.1.0/linux-amd64/migrator")
//	list := sha256sum.Format(map[string]string{"linux-amd64/migrator": sum})
package sha256sum

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// File returns the hex sha256 of the file at path, reading it as a stream.
func File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Format returns the list of sums (name to hex sha256), sorted by name.
func Format(sums map[string]string) []byte {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		fmt.Fprintf(&b, "%s  %s\n", sums[name], name)
	}
	return []byte(b.String())
}

// Parse reads a list from r; file names its source in errors.
func Parse(file string, r io.Reader) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if _, err := hex.DecodeString(sum); !ok || err != nil || len(sum) != 2*sha256.Size || name == "" {
			return nil, fmt.Errorf("%s:%d: want \"<sha256>  <file>\", got %q", file, n, sc.Text())
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("%s:%d: %s is listed twice", file, n, name)
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}
