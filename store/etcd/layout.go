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

// deletes is the key every delete of a product through [Product] also
// writes, in the same txn: a delete leaves no key for a compare to see,
// this key's mod revision does (see [IfUnchanged]). No table's key starts
// with it.
func (l layout) deletes(g int64) string { return l.gen(g) + "d" }

// markers is the prefix of the top-level table markers of generation g.
func (l layout) markers(g int64) string { return l.gen(g) + "m/" }

// nestedMarkers is the prefix of the markers of the nested tables of
// generation g.
func (l layout) nestedMarkers(g int64) string { return l.gen(g) + "nm/" }

// children is the prefix of the markers of the tables nested directly in
// the table at path (the top-level tables for an empty path): the rest of
// each such key is one encoded name.
func (l layout) children(g int64, path []string) string {
	if len(path) == 0 {
		return l.markers(g)
	}
	return l.nestedMarkers(g) + encodePath(path) + "//"
}

// marker is the key of the marker of the table at path, whose value is
// the table's sequence (encodeSeq).
func (l layout) marker(g int64, path []string) string {
	return l.children(g, path[:len(path)-1]) + encodeName(path[len(path)-1])
}

// records is the prefix of the records of the table at path in generation
// g; the record of key k is records + k, the raw bytes of k.
func (l layout) records(g int64, path []string) string {
	if len(path) == 1 {
		return l.gen(g) + "t/" + encodeName(path[0]) + "/"
	}
	return l.gen(g) + "n/" + encodePath(path) + "//"
}

// topRecords and nestedRecords are the prefixes of every record of the
// top-level tables and of the nested tables of generation g.
func (l layout) topRecords(g int64) string    { return l.gen(g) + "t/" }
func (l layout) nestedRecords(g int64) string { return l.gen(g) + "n/" }

// maxRecordPrefix bounds len(records(g, path)) for every generation and
// every path a backup can carry: a nested table's prefix is the longest,
// and encodePath is never longer than archive.EncodePath.
func (l layout) maxRecordPrefix() int {
	return len(l.root) + len("/g/9223372036854775807/n/") + maxPathLen + len("//")
}

// maxPathLen is archive.MaxTablePathLen: encodePath of a valid path is at
// most as long as the archive's encoding of it.
const maxPathLen = 2048

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
// %XX (upper-case hex), so that any name is one non-empty path element
// without "/" and the prefix of one table's records never contains
// another's.
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

// encodePath joins the encoded names of path with "/": no element is
// empty, so the result never holds "//".
func encodePath(path []string) string {
	enc := make([]string, len(path))
	for i, n := range path {
		enc[i] = encodeName(n)
	}
	return strings.Join(enc, "/")
}

// decodeName reverses encodeName.
func decodeName(enc string) (string, error) {
	name, err := url.PathUnescape(enc)
	if err != nil || name == "" || encodeName(name) != enc {
		return "", fmt.Errorf("malformed table name %q in the store's layout", enc)
	}
	return name, nil
}

// decodePath reverses encodePath.
func decodePath(enc string) ([]string, error) {
	parts := strings.Split(enc, "/")
	path := make([]string, len(parts))
	for i, p := range parts {
		n, err := decodeName(p)
		if err != nil {
			return nil, err
		}
		path[i] = n
	}
	return path, nil
}

// parseNestedMarker returns the path of the nested table whose marker has
// the key rest after nestedMarkers: the parent's encoded path, "//", the
// encoded name.
func parseNestedMarker(rest string) ([]string, error) {
	parent, name, ok := strings.Cut(rest, "//")
	if !ok || strings.Contains(name, "/") {
		return nil, fmt.Errorf("malformed nested table marker %q in the store's layout", rest)
	}
	path, err := decodePath(parent + "/" + name)
	if err != nil {
		return nil, err
	}
	return path, nil
}

// parseNestedRecord splits the key rest of a nested table's record after
// nestedRecords into the table's path and the record's key.
func parseNestedRecord(rest string) ([]string, string, error) {
	enc, key, ok := strings.Cut(rest, "//")
	if !ok {
		return nil, "", fmt.Errorf("malformed nested record %q in the store's layout", rest)
	}
	path, err := decodePath(enc)
	if err != nil {
		return nil, "", err
	}
	if len(path) < 2 {
		return nil, "", fmt.Errorf("nested record %q of a top-level table", rest)
	}
	return path, key, nil
}

// encodeSeq is the value of a table's marker: its sequence in decimal, or
// empty for 0 (as every marker written before sequences existed).
func encodeSeq(v uint64) string {
	if v == 0 {
		return ""
	}
	return strconv.FormatUint(v, 10)
}

// parseSeq reverses encodeSeq.
func parseSeq(v []byte) (uint64, error) {
	if len(v) == 0 {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != string(v) {
		return 0, fmt.Errorf("malformed table marker value %q: want a sequence, a positive decimal number, or nothing", v)
	}
	return n, nil
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
