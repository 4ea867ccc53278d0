package hookreg_test

import (
	"os/exec"
	"strings"
	"testing"
)

// goEnv returns the value of "go env NAME" of the host.
func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// TestNoEtcdServerInBinaries checks that the shipped commands link the
// etcd client only: the server (internal/etcdtest's embed package) is for
// tests and the demo.
func TestNoEtcdServerInBinaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/migrator", "./cmd/hookgen").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	var client bool
	for _, p := range deps {
		if strings.HasPrefix(p, "go.etcd.io/etcd/server/") || strings.HasSuffix(p, "/internal/etcdtest") {
			t.Errorf("the shipped commands link %s", p)
		}
		client = client || p == "go.etcd.io/etcd/client/v3"
	}
	if !client {
		t.Errorf("the migrator does not link go.etcd.io/etcd/client/v3: go list -deps printed %d packages", len(deps))
	}
}

// TestNoEtcdInLibraries checks that the packages a product's migrator and
// hooks link whatever its stores (migrator, backup, hooktest, upgrade)
// import no etcd, gRPC or protobuf package: the etcd cluster store comes
// with the import of migrator/etcdstore alone (see adopt_stores.txtar for
// an adopting module's go.mod and binary).
func TestNoEtcdInLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./migrator", "./backup", "./hooktest", "./upgrade").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "go.etcd.io/etcd/") || strings.HasPrefix(p, "google.golang.org/") || strings.HasSuffix(p, "/store/etcd") {
			t.Errorf("package migrator, backup, hooktest or upgrade links %s", p)
		}
	}
}
