package hookreg_test

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/hookreg/hookreg/generated"
	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/example"
	"github.com/hookreg/hookreg/internal/hookgen"
	"github.com/hookreg/hookreg/internal/registry"
	"github.com/hookreg/hookreg/internal/release"
	"github.com/hookreg/hookreg/internal/sumfile"
	"github.com/hookreg/hookreg/migrator"
	_ "github.com/hookreg/hookreg/migrator/etcdstore" // the "migrator" of the scripts links both stores, as cmd/migrator does
)

var update = flag.Bool("update", false, "update testscript files in place when a cmp fails")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"hookgen": func() {
			os.Exit(hookgen.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
		"migrator": func() {
			os.Exit(migrator.Main(generated.Registry, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
		"example": func() {
			os.Exit(example.Main(generated.Registry, os.Args[1:], os.Stdout, os.Stderr))
		},
		"oldsum": func() {
			if err := oldSum(os.Args[1:]); err != nil {
				fmt.Fprintln(os.Stderr, "oldsum:", err)
				os.Exit(1)
			}
		},
		"goproxy": func() {
			if err := goProxy(os.Args[1:]); err != nil {
				fmt.Fprintln(os.Stderr, "goproxy:", err)
				os.Exit(1)
			}
		},
		"migrator-at": func() {
			reg, args, err := example.RegistryAt(generated.Registry, os.Args[1:])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			p := &migrator.Program{Registry: reg, Name: "migrator"}
			os.Exit(p.Main(args, os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// TestScript runs testdata/script/*.txtar. The scripts see:
//   - HOOKREG_ROOT: this module's directory, for a scratch module's
//     "replace github.com/hookreg/hookreg => $HOOKREG_ROOT";
//   - a git that depends on nothing of the host (fixed author, committer and
//     dates, no system or global configuration);
//   - the commands "example" (build, verify, edit and dump stores of the
//     example product) and "migrator-at RELEASE[:MIN] ..." (the migrator
//     of another release) of internal/example;
//   - "exits CODE PROG [ARGS...]": exec PROG and want exit status CODE
//     (then stdout and stderr are checked as after exec);
//   - "etcd": a real three-member etcd cluster on loopback (one for the
//     whole run, started by the first script that asks), and a key prefix
//     of the script's own: it sets ETCD_ENDPOINTS (host:port,...),
//     ETCD_PREFIX and ETCD_STORE (the migrator's etcd://ENDPOINTS/PREFIX);
//   - RELEASE and LAST_HOOK: the release of the example product's registry
//     and its largest hook number, so that a script about "this release"
//     holds when a release adds a hook;
//   - the command "oldsum ALG": write generated/hooks.sum of registry.yaml
//     with the digests of an earlier algorithm (h1:, h2:), as a hookgen of
//     that time wrote it;
//   - the command "goproxy SRC DIR": publish every directory
//     SRC/PATH@VERSION (a module's files) as module PATH at VERSION in
//     DIR, a file-based module proxy (GOPROXY=file://DIR), so that a
//     script can bump a dependency of its own between versions;
//   - HOOKREG_REBUILD_CACHE: the build cache that the release gates of
//     every script use for their rebuild (release.TestRebuildCache);
//   - the Go build and module caches of the host, with GOFLAGS=-mod=mod and
//     GOPROXY=off, so scratch modules build offline.
func TestScript(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcdtest.CloseShared)
	// The release gates of the scripts share the build cache of their
	// rebuilds (see release.TestRebuildCache).
	rebuildCache, err := release.TestRebuildCache()
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Cmds:                map[string]func(*testscript.TestScript, bool, []string){"exits": exits, "etcd": etcdCluster},
		Setup: func(env *testscript.Env) error {
			for _, kv := range [][2]string{
				{"HOOKREG_ROOT", root},
				{"GOCACHE", goEnv(t, "GOCACHE")},
				{"GOMODCACHE", goEnv(t, "GOMODCACHE")},
				{"RELEASE", generated.Registry.Release},
				{"LAST_HOOK", strconv.Itoa(generated.Registry.Hooks[len(generated.Registry.Hooks)-1].Num)},
				{"GOPROXY", "off"},
				{"GOFLAGS", "-mod=mod"},
				{"GONOSUMDB", "*"},
				{"GOTOOLCHAIN", "local"},
				{"GIT_AUTHOR_NAME", "Hook Author"},
				{"GIT_AUTHOR_EMAIL", "author@example.com"},
				{"GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"},
				{"GIT_COMMITTER_NAME", "Hook Committer"},
				{"GIT_COMMITTER_EMAIL", "committer@example.com"},
				{"GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"},
				{"GIT_CONFIG_NOSYSTEM", "1"},
				{"GIT_CONFIG_GLOBAL", "/dev/null"},
				{release.EnvRebuildCache, rebuildCache},
			} {
				env.Setenv(kv[0], kv[1])
			}
			// GIT_DIR and GIT_WORK_TREE stay unset: testscript does not
			// pass the host's, and git refuses an empty GIT_DIR.
			return nil
		},
	})
}

// exits runs "exits CODE PROG [ARGS...]": PROG must exit with status CODE.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			ts.Fatalf("exits: %v", err)
		}
		got = exitErr.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// etcdCluster runs "etcd": see TestScript.
func etcdCluster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: etcd")
	}
	c, err := etcdtest.SharedCluster()
	if err != nil {
		ts.Fatalf("etcd: %v", err)
	}
	var hosts []string
	for _, ep := range c.Endpoints {
		hosts = append(hosts, strings.TrimPrefix(ep, "http://"))
	}
	prefix := etcdtest.NextPrefix(filepath.Base(ts.Getenv("WORK")))
	ts.Setenv("ETCD_ENDPOINTS", strings.Join(hosts, ","))
	ts.Setenv("ETCD_PREFIX", prefix)
	ts.Setenv("ETCD_STORE", "etcd://"+strings.Join(hosts, ",")+prefix)
}

// goProxy runs "goproxy SRC DIR": see TestScript.
func goProxy(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: goproxy SRC DIR")
	}
	src, dst := args[0], args[1]
	versions := make(map[string][]string)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		modPath, version, ok := strings.Cut(filepath.ToSlash(rel), "@")
		if !ok {
			return nil
		}
		mv := module.Version{Path: modPath, Version: version}
		escaped, err := module.EscapePath(modPath)
		if err != nil {
			return err
		}
		dir := filepath.Join(dst, filepath.FromSlash(escaped), "@v")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		gomod, err := os.ReadFile(filepath.Join(p, "go.mod"))
		if err != nil {
			return err
		}
		info := fmt.Sprintf("{\"Version\":%q,\"Time\":\"2026-01-01T00:00:00Z\"}\n", version)
		if err := os.WriteFile(filepath.Join(dir, version+".info"), []byte(info), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, version+".zip"))
		if err != nil {
			return err
		}
		if err := modzip.CreateFromDir(f, mv, p); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", rel, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		versions[dir] = append(versions[dir], version)
		return filepath.SkipDir
	})
	if err != nil {
		return err
	}
	for dir, vs := range versions {
		if err := os.WriteFile(filepath.Join(dir, "list"), []byte(strings.Join(vs, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// oldSum runs "oldsum ALG" in the working directory: see TestScript.
func oldSum(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: oldsum ALG")
	}
	data, err := os.ReadFile("registry.yaml")
	if err != nil {
		return err
	}
	f, ds := registry.Parse("registry.yaml", data)
	if len(ds) > 0 {
		return errors.New(ds[0].Text())
	}
	funcs, ds, err := registry.LoadFuncs(".", f)
	if err != nil {
		return err
	}
	if len(ds) > 0 {
		return errors.New(ds[0].Text())
	}
	var lines []sumfile.Line
	for i, h := range f.Hooks {
		res, err := funcs.Digest(f, i, args[0])
		if err != nil {
			return err
		}
		lines = append(lines, sumfile.Line{Num: h.Num, Name: h.Func, Digest: res.Digest})
	}
	slices.SortFunc(lines, func(a, b sumfile.Line) int { return a.Num - b.Num })
	if err := os.MkdirAll("generated", 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join("generated", "hooks.sum"), sumfile.Format(lines), 0o644)
}
