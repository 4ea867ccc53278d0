package diag

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	ds := []Diagnostic{
		{Pos: Position{"registry.yaml", 12, 3}, Rule: "immutable-version", Hook: 98, Message: `introduced_in changed from "5.0.0" to "5.0.1"`,
			Related: []Related{{Message: "landed in abc123 (v5.0.0)"}}},
		{Pos: Position{"registry.yaml", 4, 3}, Rule: "num-order", Hook: 99, Message: "a, b: 50%"},
		{Pos: Position{"registry.yaml", 4, 3}, Rule: "num-order", Hook: 99, Message: "a, b: 50%"},
	}
	for _, tc := range []struct{ format, want string }{
		{"text", "registry.yaml:4:3: hook 99: a, b: 50% [num-order]\n" +
			"registry.yaml:12:3: hook 98: introduced_in changed from \"5.0.0\" to \"5.0.1\" [immutable-version]\n" +
			"\tlanded in abc123 (v5.0.0)\n"},
		{"json", `{"file":"registry.yaml","line":4,"col":3,"rule":"num-order","hook":99,"message":"a, b: 50%"}` + "\n" +
			`{"file":"registry.yaml","line":12,"col":3,"rule":"immutable-version","hook":98,"message":"introduced_in changed from \"5.0.0\" to \"5.0.1\"","related":[{"message":"landed in abc123 (v5.0.0)"}]}` + "\n"},
		{"github", "::error file=registry.yaml,line=4,col=3,title=num-order::hook 99: a, b: 50%25\n" +
			"::error file=registry.yaml,line=12,col=3,title=immutable-version::hook 98: introduced_in changed from \"5.0.0\" to \"5.0.1\"%0Alanded in abc123 (v5.0.0)\n"},
	} {
		var b strings.Builder
		if err := Write(&b, tc.format, append([]Diagnostic(nil), ds...)); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("format %s:\ngot:\n%s\nwant:\n%s", tc.format, b.String(), tc.want)
		}
	}
	if err := Write(&strings.Builder{}, "xml", ds); err == nil {
		t.Error("format xml: no error")
	}
}
