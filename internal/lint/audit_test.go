package lint

import "testing"

func TestAddsOnTop(t *testing.T) {
	const old = "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n"
	for _, tc := range []struct {
		name, cur string
		want      bool
	}{
		{"unchanged", old, true},
		{"one on top", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 3\n    func: C\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", true},
		{"two on top, above the comment", "# hooks\nrelease: 1.0.0\nhooks:\n  - num: 4\n    func: D\n  - num: 3\n    func: C\n  # newest first\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", true},
		{"same prefix as the old top", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 20\n    func: B\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", true},
		{"num not larger", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 2\n    func: C\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", false},
		{"inserted below", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 2\n    func: B\n  - num: 3\n    func: C\n  - num: 1\n    func: A\n", false},
		{"edited", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 2\n    func: B2\n  - num: 1\n    func: A\n", false},
		{"removed", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 2\n    func: B\n", false},
		{"header changed", "# hooks\nrelease: 1.1.0\nhooks:\n  # newest first\n  - num: 3\n    func: C\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", false},
		{"top-level key inserted", "# hooks\nrelease: 1.0.0\nhooks:\n  # newest first\n  - num: 3\n    func: C\nextra: 1\n  - num: 2\n    func: B\n  - num: 1\n    func: A\n", false},
		{"deleted", "", false},
	} {
		var cur []byte
		if tc.cur != "" {
			cur = []byte(tc.cur)
		}
		if got := addsOnTop([]byte(old), cur); got != tc.want {
			t.Errorf("%s: addsOnTop = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAppendsSum(t *testing.T) {
	const old = "1 A h1:a=\n2 B h1:b=\n"
	for _, tc := range []struct {
		name, cur string
		want      bool
	}{
		{"unchanged", old, true},
		{"appended", old + "3 C h1:c=\n4 D h1:d=\n", true},
		{"digest changed", "1 A h1:a=\n2 B h1:x=\n", false},
		{"smaller num appended", old + "1 C h1:c=\n", false},
		{"line removed", "1 A h1:a=\n", false},
		{"inserted in the middle", "1 A h1:a=\n3 C h1:c=\n2 B h1:b=\n", false},
	} {
		if got := appendsSum([]byte(old), []byte(tc.cur)); got != tc.want {
			t.Errorf("%s: appendsSum = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !appendsSum(nil, []byte("1 A h1:a=\n")) {
		t.Errorf("appendsSum from no file = false, want true")
	}
}
