package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Target is a platform a release is built for.
type Target struct{ GOOS, GOARCH string }

func (t Target) String() string { return t.GOOS + "-" + t.GOARCH }

// exe returns the file name of command name on t.
func (t Target) exe(name string) string {
	if t.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

// Targets are the platforms of a release by default.
var Targets = []Target{
	{"linux", "amd64"},
	{"linux", "arm64"},
	{"darwin", "arm64"},
	{"windows", "amd64"},
}

// Host is the platform of the running program.
var Host = Target{runtime.GOOS, runtime.GOARCH}

// ParseTargets parses a comma-separated list of GOOS/GOARCH platforms;
// "host" is the running program's platform.
func ParseTargets(list string) ([]Target, error) {
	var ts []Target
	for p := range strings.SplitSeq(list, ",") {
		p = strings.TrimSpace(p)
		if p == "host" {
			ts = append(ts, Host)
			continue
		}
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok || goos == "" || goarch == "" || strings.ContainsAny(goarch, "/ ") {
			return nil, fmt.Errorf("platform %q is not GOOS/GOARCH (such as linux/amd64) or host", p)
		}
		ts = append(ts, Target{goos, goarch})
	}
	return ts, nil
}

// Build builds the command pkg (such as "./cmd/migrator") of the module in
// dir for t into the file out, reproducibly: no cgo, -trimpath, an empty
// build id and VCS stamping from the commit (not from the clock), so two
// builds of one commit are byte-identical whatever their paths and times.
// env adds to the environment of the go command (such as a GOCACHE).
func Build(ctx context.Context, dir string, t Target, pkg, out string, env ...string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto", "-ldflags=-buildid=", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH, "GOFLAGS=", "GOTOOLCHAIN=local")
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for %s: %w\n%s", pkg, t, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// binPath returns where a release puts command pkg for t below dist.
func binPath(dist string, t Target, pkg string) string {
	return filepath.Join(dist, t.String(), t.exe(filepath.Base(pkg)))
}
