package release

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/internal/registry"
)

func (g *gate) registryRelease(ctx context.Context) error {
	path := filepath.Join(g.opts.Dir, "registry.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return cliflag.Env(fmt.Errorf("reading registry: %w", err))
	}
	f, diags := registry.Parse("registry.yaml", data)
	if len(diags) > 0 {
		return refusef("registry.yaml has findings:\n%s", diags[0].Text())
	}
	if f.Release != g.opts.Version {
		return refusef("registry.yaml says release %q, not %q: set \"release: %s\" in registry.yaml, run go generate ./... and commit", f.Release, g.opts.Version, g.opts.Version)
	}
	return nil
}

func (g *gate) generated(ctx context.Context) error {
	if ok, out := g.opts.Hookgen("check"); !ok {
		return refusef("hookgen check fails: run go generate ./... and commit:\n%s", out)
	}
	return nil
}

func (g *gate) lint(ctx context.Context) error {
	tags, err := g.releaseTags(ctx)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		fmt.Fprintln(g.opts.Log, "release: no release tags yet: nothing to lint against")
		return nil
	}
	args := []string{"lint"}
	for _, t := range tags {
		args = append(args, "--against", t)
	}
	if ok, out := g.opts.Hookgen(args...); !ok {
		return refusef("hookgen lint against the release tags (%s) fails:\n%s", strings.Join(tags, ", "), out)
	}
	return nil
}
