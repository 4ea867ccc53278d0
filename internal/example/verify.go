package example

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/hooks/libfoo"
	"github.com/hookreg/hookreg/store"
)

// Verify checks that tx holds exactly the data of release for size: every
// user and rule with its record, broker.json, and no other table than the
// metadata. Memory stays bounded by a bit per user and rule.
func Verify(tx store.Tx, release string, size Size) error {
	return verify(tx, release, size, false)
}

// VerifyInterrupted is Verify for the data left by a run interrupted
// inside the 5.1.0 hook after a checkpoint: the data of release 5.0.1 plus
// per-tenant ACL tables that hold correct copies of some rules.
func VerifyInterrupted(tx store.Tx, size Size) error {
	return verify(tx, "5.0.1", size, true)
}

func verify(tx store.Tx, release string, size Size, partialSplit bool) error {
	names, err := tx.Tables()
	if err != nil {
		return err
	}
	split := atLeast(release, "5.1.0")
	ruleSeen := make([]bool, size.Rules)
	for _, name := range names {
		switch {
		case name == store.MetaTable:
		case name == store.ConfigTable:
			if err := verifyConfig(tx, release); err != nil {
				return err
			}
		case name == "users":
			if err := verifyUsers(tx, release, size); err != nil {
				return err
			}
		case name == "acl" && !split:
			if err := verifyRules(tx, name, size, ruleSeen); err != nil {
				return err
			}
		case strings.HasPrefix(name, "acl.") && (split || partialSplit):
			seen := ruleSeen
			if !split {
				seen = make([]bool, size.Rules)
			}
			if err := verifyRules(tx, name, size, seen); err != nil {
				return err
			}
		default:
			return fmt.Errorf("release %s: unexpected table %q", release, name)
		}
	}
	for j, ok := range ruleSeen {
		if !ok {
			return fmt.Errorf("release %s: acl rule %s is missing", release, RuleKey(j))
		}
	}
	if _, err := tx.Table("users"); errors.Is(err, hook.ErrNoTable) && size.Users > 0 {
		return fmt.Errorf("release %s: table users is missing", release)
	}
	if _, _, err := store.ReadConfigFile(tx, ConfigFile); err != nil {
		return fmt.Errorf("release %s: %w", release, err)
	}
	return nil
}

func verifyConfig(tx store.Tx, release string) error {
	files, err := store.ConfigView(tx).List()
	if err != nil {
		return err
	}
	if len(files) != 1 || files[0] != ConfigFile {
		return fmt.Errorf("release %s: configuration files %q, want [%s]", release, files, ConfigFile)
	}
	data, _, err := store.ReadConfigFile(tx, ConfigFile)
	if err != nil {
		return err
	}
	if want := Config(release); !bytes.Equal(data, want) {
		return fmt.Errorf("release %s: %s is\n%s\nwant\n%s", release, ConfigFile, data, want)
	}
	return nil
}

func verifyUsers(tx store.Tx, release string, size Size) error {
	t, err := tx.Table("users")
	if err != nil {
		return err
	}
	seen := make([]bool, size.Users)
	n := 0
	err = t.Scan(nil, func(k, v []byte) error {
		name := string(k)
		if atLeast(release, "5.0.0") {
			var ok bool
			if name, ok = strings.CutPrefix(name, libfoo.UserPrefix); !ok {
				return fmt.Errorf("user key %q lacks the prefix %q", k, libfoo.UserPrefix)
			}
		}
		i, ok := userIndex(name)
		if !ok || i >= size.Users || seen[i] {
			return fmt.Errorf("unexpected user key %q", k)
		}
		seen[i] = true
		n++
		if want := UserValue(i, release); !bytes.Equal(v, want) {
			return fmt.Errorf("user %q is %s, want %s", k, v, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %s: table users: %w", release, err)
	}
	if n != size.Users {
		return fmt.Errorf("release %s: table users has %d records, want %d", release, n, size.Users)
	}
	return nil
}

// verifyRules checks the rules of table name (acl or acl.<tenant>) and
// marks them in seen.
func verifyRules(tx store.Tx, name string, size Size, seen []bool) error {
	t, err := tx.Table(name)
	if err != nil {
		return err
	}
	tenant, split := strings.CutPrefix(name, "acl.")
	err = t.Scan(nil, func(k, v []byte) error {
		var j int
		if _, err := fmt.Sscanf(string(k), "%08d", &j); err != nil || j < 0 || j >= size.Rules || !bytes.Equal(k, RuleKey(j)) {
			return fmt.Errorf("unexpected rule key %q", k)
		}
		if seen[j] {
			return fmt.Errorf("rule %q appears twice", k)
		}
		seen[j] = true
		if want := RuleValue(j, size); !bytes.Equal(v, want) {
			return fmt.Errorf("rule %q is %s, want %s", k, v, want)
		}
		if split && userTenant(ruleUser(j, size)) != tenant {
			return fmt.Errorf("rule %q of user %q is in the table of tenant %q", k, Rule(j, size).Username, tenant)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("table %s: %w", name, err)
	}
	return nil
}
