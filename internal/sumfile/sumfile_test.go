package sumfile

import (
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []Line{{100, "UpgradeLibBaz", "h1:c="}, {98, "libfoo.UpgradeLibFoo", "h1:a="}}
	data := Format(in)
	if want := "98 libfoo.UpgradeLibFoo h1:a=\n100 UpgradeLibBaz h1:c=\n"; string(data) != want {
		t.Fatalf("Format = %q, want %q", data, want)
	}
	out, err := Parse("hooks.sum", data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out, []Line{in[1], in[0]}) {
		t.Errorf("Parse = %v", out)
	}
	for _, bad := range []string{"98 x\n", "x y h1:a\n", "0 y h1:a\n", "98 y nodigest\n"} {
		if _, err := Parse("hooks.sum", []byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
