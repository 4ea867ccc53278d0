package archive_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookreg/hookreg/archive"
)

// TestManifestCovered: format 3 carries the maintenance hooks the
// installing release contained (optional "covered"); older formats and
// malformed lists are refused.
func TestManifestCovered(t *testing.T) {
	m := archive.Manifest{Format: 3, Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Product: "p", Release: "2.16.1",
		RegistryDigest: "h1:x", DataVersion: "2.16.1", Covered: []int{1002016001}, Applied: []archive.AppliedHook{}, Config: []archive.ConfigFile{}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"covered":[1002016001]`) {
		t.Errorf("manifest %s has no covered", data)
	}
	got, err := archive.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Covered, m.Covered) {
		t.Errorf("covered %v, want %v", got.Covered, m.Covered)
	}
	m.Covered = nil
	data, _ = json.Marshal(m)
	if strings.Contains(string(data), "covered") {
		t.Errorf("manifest without covered hooks says %s", data)
	}
	for _, bad := range []string{
		strings.Replace(string(data), `"format":3`, `"format":3,"covered":[]`, 1),
		strings.Replace(string(data), `"format":3`, `"format":3,"covered":[2,1]`, 1),
		strings.Replace(string(data), `"format":3`, `"format":3,"covered":null`, 1),
	} {
		if _, err := archive.ParseManifest([]byte(bad)); err == nil {
			t.Errorf("parsed %s", bad)
		}
	}
}
