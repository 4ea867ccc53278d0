package registry_test

import (
	"fmt"
	"strings"
	"testing"
)

// mainWithBackport is main's registry at 2.20.0 with the backport of
// 2.16.1 (hook 1 of line 2.16) merged from release-2.16.
const mainWithBackport = `release: 2.20.0
hooks:
  - num: 4
    introduced_in: 2.20.0
    allow_online: false
    func: D
  - num: 3
    introduced_in: 2.17.0
    allow_online: false
    func: C
  - num: 1002016001
    introduced_in: 2.16.1
    allow_online: true
    maintenance: true
    func: Fix
  - num: 2
    introduced_in: 2.16.0
    allow_online: false
    func: B
`

// TestMaintenanceRules: a maintenance hook stands where its version places
// it, outside main's num order, numbered in its line's range; nothing else
// is relaxed.
func TestMaintenanceRules(t *testing.T) {
	f, ds := parseCheck(mainWithBackport)
	if len(ds) > 0 {
		t.Fatalf("findings: %v", ds)
	}
	if h := f.Hooks[2]; !h.Maintenance || h.MaintenancePos.Line != 14 {
		t.Errorf("hook %d: maintenance %t at %v", h.Num, h.Maintenance, h.MaintenancePos)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"no marker", "    maintenance: true\n", "", "11:10 maintenance"},
		{"wrong line", "1002016001", "1002017001", "11:10 maintenance"},
		{"minor release", "2.16.1\n    allow_online: true", "2.16.0\n    allow_online: true", "12:20 maintenance"},
		{"marker on main's number", "num: 2\n    introduced_in: 2.16.0\n    allow_online: false\n", "num: 2\n    introduced_in: 2.16.0\n    allow_online: false\n    maintenance: true\n", "17:20 maintenance"},
		// hook 3 (2.17.0) moved below the backport (2.16.1)
		{"above a later version", "  - num: 3\n    introduced_in: 2.17.0\n    allow_online: false\n    func: C\n  - num: 1002016001\n    introduced_in: 2.16.1\n    allow_online: true\n    maintenance: true\n    func: Fix\n", "  - num: 1002016001\n    introduced_in: 2.16.1\n    allow_online: true\n    maintenance: true\n    func: Fix\n  - num: 3\n    introduced_in: 2.17.0\n    allow_online: false\n    func: C\n", "13:20 version-order"},
		{"not a bool", "maintenance: true", "maintenance: yes please", "14:18 wrong-type"},
	} {
		data := strings.Replace(mainWithBackport, tc.from, tc.to, 1)
		_, ds := parseCheck(data)
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%d:%d %s", d.Pos.Line, d.Pos.Col, d.Rule))
		}
		if !strings.Contains(strings.Join(got, ", "), tc.want) {
			t.Errorf("%s: findings %v, want %s", tc.name, ds, tc.want)
		}
	}
}
