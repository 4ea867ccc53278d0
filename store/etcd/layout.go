package etcd

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// layout names the etcd keys of one store (see the package documentation).
type layout struct {
	root string // the prefix, without a trailing slash
}

func (l layout) current() string { return l.root + "/current" }

func (l layout) lockPrefix() string { return l.root + "/lock" }

func (l layout) genMarker(g int64) string { return l.root + "/gen/" + strconv.FormatInt(g, 10) }

func (l layout) gen(g int64) string { return l.root + "/g/" + strconv.FormatInt(g, 10) + "/" }

// markers is the prefix of the table markers of generation g.
func (l layout) markers(g int64) string { return l.gen(g) + "m/" }

func (l layout) marker(g int64, table string) string { return l.markers(g) + encodeName(table) }

// records is the prefix of the records of table in generation g; the
// record of key k is records + k, the raw bytes of k.
func (l layout) records(g int64, table string) string {
	return l.gen(g) + "t/" + encodeName(table) + "/"
}

// prefixEnd returns the end of the range of keys that start with p.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00" // every key: p is empty or all 0xff
}

// encodeName escapes every byte of a table name outside [A-Za-z0-9._-] as
// %XX (upper-case hex), so that any name is one path element without "/"
// and the prefix of one table's records never contains another's.
func encodeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// decodeName reverses encodeName.
func decodeName(enc string) (string, error) {
	name, err := url.PathUnescape(enc)
	if err != nil || encodeName(name) != enc {
		return "", fmt.Errorf("malformed table name %q in the store's layout", enc)
	}
	return name, nil
}

// parseGeneration parses the value of the current key.
func parseGeneration(v []byte) (int64, error) {
	g, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || g <= 0 || strconv.FormatInt(g, 10) != string(v) {
		return 0, fmt.Errorf("malformed generation %q: want a positive decimal number", v)
	}
	return g, nil
}

// trimPrefix normalizes a store prefix: no trailing slash.
func trimPrefix(p string) string { return strings.TrimRight(p, "/") }
