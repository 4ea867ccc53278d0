package layout

import "testing"

// TestOwned: the store's own names beside it, and only those.
func TestOwned(t *testing.T) {
	for name, want := range map[string]bool{
		"app.db": true,
		"app.db.pre-upgrade-4.4.0-20260101T000000Z.tar.zst": true,
		".app.db.upgraded.tar.zst":                          true,
		".app.db.upgraded.tar.zst.store":                    true,
		".app.db.restore-123":                               true,
		".app.db.config-swap":                               true,
		"..app.db.config-swap.tmp-1":                        true,
		"..app.db.upgraded.tar.zst.offline-9":               true,
		"app.db.yaml":                                       false,
		"app.dbx":                                           false,
		".app.dbx":                                          false,
		".app.db":                                           false,
		"certs":                                             false,
		".env":                                              false,
		"x.app.db.pre-upgrade-1":                            false,
	} {
		if got := Owned("app.db", name); got != want {
			t.Errorf("Owned(app.db, %q) = %v, want %v", name, got, want)
		}
	}
	// A store whose own name is hidden.
	if !Owned(".db", "..db.restore-1") || Owned(".db", ".dbx") {
		t.Error("a hidden store's names")
	}
}

// TestBeside: the names Beside makes are the store's.
func TestBeside(t *testing.T) {
	got := Beside("/data/app.db", ".config-swap")
	if got != "/data/.app.db.config-swap" || !Owned("app.db", ".app.db.config-swap") {
		t.Errorf("Beside = %q", got)
	}
}
