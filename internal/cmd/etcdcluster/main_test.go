package main

import "testing"

// TestRun runs a command beside a real cluster: it sees the cluster in its
// environment and reaches it, and its exit status is the result (3 when
// every check passed, another status naming the check that failed).
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an etcd cluster")
	}
	script := `case "$ETCD_STORE" in etcd://127.0.0.1:*,127.0.0.1:*,127.0.0.1:*/demo) ;; *) exit 9;; esac
		test "$ETCD_PREFIX" = /demo || exit 8
		ep=${ETCD_ENDPOINTS%%,*}
		exec 3<>/dev/tcp/${ep%:*}/${ep##*:} || exit 7
		exit 3`
	got, err := run("bash", []string{"-c", script})
	if err != nil {
		t.Fatal(err)
	}
	if got != 3 {
		t.Errorf("bash -c %q: exit %d, want 3", script, got)
	}
}
