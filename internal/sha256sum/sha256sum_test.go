package sha256sum

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripWithSha256sum(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{"b/x": "hello\n", "a": ""}
	sums := map[string]string{}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		sum, err := File(p)
		if err != nil {
			t.Fatal(err)
		}
		sums[name] = sum
	}
	list := Format(sums)
	want := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  a\n" +
		"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  b/x\n"
	if string(list) != want {
		t.Fatalf("Format =\n%s\nwant\n%s", list, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), list, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	back, err := Parse("SHA256SUMS", strings.NewReader(string(list)))
	if err != nil || !maps.Equal(back, sums) {
		t.Errorf("Parse = %v, %v; want %v", back, err, sums)
	}
	for _, bad := range []string{"abc  x\n", want[:66] + "\n", "zz" + want[2:], want + want} {
		if _, err := Parse("SHA256SUMS", strings.NewReader(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}
