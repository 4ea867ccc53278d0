package sumfile

import (
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []Line{{Num: 100, Name: "UpgradeLibBaz", Digest: "h2:c="}, {Num: 98, Name: "libfoo.UpgradeLibFoo", Digest: "h2:a=", Earlier: []string{"h1:b=->h2:a="}}}
	data := Format(in)
	if want := "98 libfoo.UpgradeLibFoo h2:a= h1:b=->h2:a=\n100 UpgradeLibBaz h2:c=\n"; string(data) != want {
		t.Fatalf("Format = %q, want %q", data, want)
	}
	out, err := Parse("hooks.sum", data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(out, []Line{in[1], in[0]}, func(a, b Line) bool {
		return a.Num == b.Num && a.Name == b.Name && a.Digest == b.Digest && slices.Equal(a.Earlier, b.Earlier)
	}) {
		t.Errorf("Parse = %v", out)
	}
	for _, bad := range []string{"98 x\n", "x y h1:a\n", "0 y h1:a\n", "98 y nodigest\n", "98 y h2:a h1:b\n", "98 y h2:a h1:b->c\n"} {
		if _, err := Parse("hooks.sum", []byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
