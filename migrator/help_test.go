package migrator_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/migrator"
)

// TestHelpOfAnotherProduct renders every command's help for registries of
// another product, with no hook, one hook and several: each names the
// program as given and the product, and shows nothing of the example
// product.
func TestHelpOfAnotherProduct(t *testing.T) {
	noop := func(ctx context.Context, tx hook.Tx) error { return nil }
	regs := map[string]*hook.Registry{
		"none": {Product: "example.com/shop", Release: "1.0.0"},
		"one":  {Product: "shop", Release: "1.0.0", Hooks: []hook.Hook{{Num: 7, IntroducedIn: "1.0.0", Name: "Seven", Func: noop}}},
		"three": {Product: "shop", Release: "3.0.0", Hooks: []hook.Hook{
			{Num: 1, IntroducedIn: "1.0.0", Name: "One", Func: noop},
			{Num: 2, IntroducedIn: "2.0.0", AllowOnline: true, Name: "Two", Func: noop},
			{Num: 3, IntroducedIn: "3.0.0", Name: "Three", Func: noop},
		}},
	}
	example := regexp.MustCompile(`mqtt|broker|UpgradeLib|\b(98|99|100)\b|help template`)
	commands := []string{"", "version", "init", "status", "plan", "upgrade", "backup", "verify", "restore", "dump"}
	for name, reg := range regs {
		for _, cmd := range commands {
			p := &migrator.Program{Registry: reg, Name: "shopctl db"}
			var stdout, stderr bytes.Buffer
			args := []string{"help"}
			if cmd != "" {
				args = append(args, cmd)
			}
			if code := p.Main(args, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("%s: help %s: exit %d: %s", name, cmd, code, stderr.String())
			}
			out := stdout.String()
			if m := example.FindString(out); m != "" {
				t.Errorf("%s: help %s shows %q:\n%s", name, cmd, m, out)
			}
			if !strings.Contains(out, "shopctl db") || (cmd != "" && !strings.Contains(out, "Example")) {
				t.Errorf("%s: help %s does not name the program or has no example:\n%s", name, cmd, out)
			}
		}
	}
}
