package migrator

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFollowReport: on a terminal, the parent shows each hook the child
// starts while it runs, once, from the growing report.
func TestFollowReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.jsonl")
	var out bytes.Buffer
	stop := followReport(path, &out)
	time.Sleep(300 * time.Millisecond) // no report yet: nothing shown
	lines := `{"event":"start","num":98,"name":"libfoo.UpgradeLibFoo","introduced_in":"5.0.0"}
{"event":"end","num":98,"name":"libfoo.UpgradeLibFoo","introduced_in":"5.0.0"}
{"event":"start","num":99,"name":"libbar.UpgradeLibBar","introduced_in":"5.0.1"}
{"event":"end","num":99,"na`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	stop()
	want := "running hook 98 (libfoo.UpgradeLibFoo, 5.0.0)\nrunning hook 99 (libbar.UpgradeLibBar, 5.0.1)\n"
	if out.String() != want {
		t.Errorf("shown:\n%s\nwant:\n%s", out.String(), want)
	}
	followReport(path, nil)() // not a terminal: nothing to follow
}
