package backup

import "testing"

// TestUnescapeMountinfo: mount points with spaces, tabs, newlines and
// backslashes are escaped in octal in /proc/self/mountinfo.
func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/data/etc`:            "/data/etc",
		`/data/my\040certs`:    "/data/my certs",
		`/a\011b\012c\134d`:    "/a\tb\nc\\d",
		`/trailing\04`:         `/trailing\04`,
		`/not\999octal\040end`: `/not\999octal end`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
