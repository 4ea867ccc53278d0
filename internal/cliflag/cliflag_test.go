package cliflag

import (
	"errors"
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		pos   []string
		store string
	}{
		{[]string{"f", "--store", "s"}, []string{"f"}, "s"},
		{[]string{"-store=s", "f"}, []string{"f"}, "s"},
		{[]string{"a", "-store", "s", "b"}, []string{"a", "b"}, "s"},
		{[]string{"--", "-store", "x"}, []string{"-store", "x"}, ""},
		{[]string{"a", "--", "--store"}, []string{"a", "--store"}, ""},
		{nil, nil, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		store := fs.String("store", "", "")
		pos, err := Parse(fs, tc.args)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.args, err)
		}
		if !slices.Equal(pos, tc.pos) || *store != tc.store {
			t.Errorf("Parse(%q) = %q, store %q; want %q, store %q", tc.args, pos, *store, tc.pos, tc.store)
		}
	}
}

func TestParseErrors(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := Parse(fs, []string{"a", "--nope"}); !errors.Is(err, ErrUsage) {
		t.Errorf("unknown flag: got %v, want a usage error", err)
	}
	fs.Int("n", 0, "a number")
	fs.String("store", "", "the store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "unknown flag --nope"},
		{[]string{"--nope=1"}, "unknown flag --nope"},
		{[]string{"--store"}, "flag needs an argument: --store"},
		{[]string{"-n", "x"}, `invalid value "x" for flag --n: parse error`},
	} {
		if _, err := Parse(fs, c.args); err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %q (flags named as the usage names them)", c.args, err, c.want)
		}
	}
	if _, err := Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
	if err := Exactly([]string{}, "FILE"); !errors.Is(err, ErrUsage) || err.Error() != "missing argument FILE" {
		t.Errorf("Exactly: got %v", err)
	}
	if err := Exactly([]string{"a", "b"}, "FILE"); err == nil || err.Error() != `unexpected argument "b"` {
		t.Errorf("Exactly: got %v", err)
	}
}
