package gitx_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/gitx"
)

// git runs git in dir with a host-independent environment.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_DIR=") && !strings.HasPrefix(kv, "GIT_WORK_TREE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"GIT_AUTHOR_NAME=a", "GIT_AUTHOR_EMAIL=a@example.com", "GIT_AUTHOR_DATE=2026-01-01T00:00:00Z",
		"GIT_COMMITTER_NAME=c", "GIT_COMMITTER_EMAIL=c@example.com", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func commit(t *testing.T, dir, msg string) string {
	t.Helper()
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// history makes a repository: a registry on main, tagged v1.0.0 (annotated),
// a branch that changes it and is merged back, a v2.0.0 tag and a non-semver
// v-tag.
func history(t *testing.T) (dir string, commits map[string]string) {
	dir = t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	commits = make(map[string]string)
	write(t, dir, "registry.yaml", "one\n")
	write(t, dir, "other.txt", "x\n")
	commits["one"] = commit(t, dir, "first registry")
	git(t, dir, "tag", "-a", "-m", "release", "v1.0.0")
	write(t, dir, "other.txt", "y\n")
	commits["other"] = commit(t, dir, "unrelated")
	git(t, dir, "checkout", "-q", "-b", "side")
	write(t, dir, "registry.yaml", "one\ntwo\n")
	commits["two"] = commit(t, dir, "side: two")
	git(t, dir, "checkout", "-q", "main")
	write(t, dir, "sub/hooks.sum", "sum\n")
	commits["sum"] = commit(t, dir, "main: sum")
	git(t, dir, "merge", "-q", "--no-ff", "-m", "merge side", "side")
	commits["merge"] = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "tag", "v2.0.0")
	git(t, dir, "tag", "vnext")
	return dir, commits
}

func TestRepo(t *testing.T) {
	ctx := context.Background()
	dir, commits := history(t)
	repo, err := gitx.Open(ctx, filepath.Join(dir, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if repo.Root != dir {
		t.Errorf("Root = %q, want %q", repo.Root, dir)
	}
	if err := repo.CheckComplete(ctx); err != nil {
		t.Errorf("CheckComplete: %v", err)
	}
	tags, err := repo.ReleaseTags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 2 || tags[0].Name != "v1.0.0" || tags[0].Commit != commits["one"] || tags[1].Name != "v2.0.0" || tags[1].Commit != commits["merge"] {
		t.Errorf("ReleaseTags = %+v", tags)
	}
	if in, err := repo.Contains(ctx, commits["two"], tags); err != nil || len(in) != 1 || in[0].Name != "v2.0.0" {
		t.Errorf("Contains(two) = %+v, %v", in, err)
	}
	if b, err := repo.DefaultBranch(ctx); err != nil || b != "refs/heads/main" {
		t.Errorf("DefaultBranch = %q, %v", b, err)
	}
	if _, err := repo.Resolve(ctx, "nosuch"); !errors.Is(err, gitx.ErrUnknownRevision) {
		t.Errorf("Resolve(nosuch) = %v, want ErrUnknownRevision", err)
	}
	if mb, err := repo.MergeBase(ctx, "side", commits["sum"]); err != nil || mb != commits["other"] {
		t.Errorf("MergeBase = %q, %v, want %s", mb, err, commits["other"])
	}

	b, err := repo.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"v1.0.0:registry.yaml", "one\n", true},
		{commits["two"] + ":registry.yaml", "one\ntwo\n", true},
		{"v1.0.0:sub/hooks.sum", "", false},
		{"HEAD:sub/hooks.sum", "sum\n", true},
	} {
		data, ok, err := b.Read(tc.name)
		if err != nil || ok != tc.ok || string(data) != tc.want {
			t.Errorf("Read(%s) = %q, %v, %v; want %q, %v", tc.name, data, ok, err, tc.want, tc.ok)
		}
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}

	var got []string
	err = repo.Log(ctx, "HEAD", []string{"registry.yaml", "sub/hooks.sum"}, func(c *gitx.Commit) error {
		var paths []string
		for _, ch := range c.Changes {
			paths = append(paths, ch.Path)
		}
		got = append(got, c.Subject+" "+strings.Join(paths, ","))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first registry registry.yaml", "main: sum sub/hooks.sum", "side: two registry.yaml", "merge side registry.yaml"}
	if len(got) != 4 || got[0] != want[0] || got[3] != want[3] || !slices.Contains(got, want[1]) || !slices.Contains(got, want[2]) {
		t.Errorf("Log = %q, want %q (the middle two in either order)", got, want)
	}

	out := t.TempDir()
	if err := repo.Extract(ctx, commits["two"], out); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(out, "registry.yaml")); err != nil || string(data) != "one\ntwo\n" {
		t.Errorf("extracted registry.yaml = %q, %v", data, err)
	}
}

func TestNotRepository(t *testing.T) {
	t.Setenv("GIT_CEILING_DIRECTORIES", os.TempDir())
	_, err := gitx.Open(context.Background(), t.TempDir())
	if !errors.Is(err, gitx.ErrNotRepository) {
		t.Errorf("Open outside a repository: %v, want ErrNotRepository", err)
	}
}

// A git hook runs with GIT_DIR set; Open resolves the same repository.
func TestGitDirEnvironment(t *testing.T) {
	dir, _ := history(t)
	elsewhere := t.TempDir()
	t.Setenv("GIT_DIR", filepath.Join(dir, ".git"))
	t.Setenv("GIT_WORK_TREE", dir)
	repo, err := gitx.Open(context.Background(), elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	if repo.Root != dir || repo.GitDir != filepath.Join(dir, ".git") {
		t.Errorf("Root, GitDir = %q, %q", repo.Root, repo.GitDir)
	}
	if _, err := repo.Resolve(context.Background(), "v2.0.0"); err != nil {
		t.Error(err)
	}
}

func TestShallow(t *testing.T) {
	dir, _ := history(t)
	clone := filepath.Join(t.TempDir(), "clone")
	git(t, dir, "clone", "-q", "--depth", "1", "file://"+dir, clone)
	repo, err := gitx.Open(context.Background(), clone)
	if err != nil {
		t.Fatal(err)
	}
	err = repo.CheckComplete(context.Background())
	if !errors.Is(err, gitx.ErrIncomplete) || !strings.Contains(err.Error(), gitx.UnshallowAdvice) {
		t.Errorf("CheckComplete on a shallow clone: %v", err)
	}
	if ok, err := repo.HasRemotes(context.Background()); err != nil || !ok {
		t.Errorf("HasRemotes = %v, %v", ok, err)
	}
}
