// Package example generates the data of the example product (a small MQTT
// broker, see package hooks) deterministically, for tests, the crash test,
// benchmarks and the release fixtures.
//
// Release 4.4.0 wrote the data that [Load] produces: size.Users users in
// table "users", size.Rules rules in table "acl", and the configuration file
// broker.json (held in the store's configuration table, as an offline
// upgrade sees it). [Build] produces the data of a later release: 4.4.0
// upgraded with the hooks introduced up to that release. [Verify] checks
// that a store holds exactly the data of a release, and [Dump] writes a
// store's logical content for comparisons. [Main] and [RegistryAt] serve
// the "example" and "migrator-at" commands of the test scripts.
//
//	st, err := bolt.Open("broker.db", bolt.Options{Create: true})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	if err := example.Build(ctx, st, generated.Registry, "5.0.1", example.Small); err != nil {
//		return err
//	}
package example

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/hooks"
	"github.com/hookreg/hookreg/hooks/libfoo"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

// Releases of the example product whose data differ, oldest first.
var Releases = []string{"4.4.0", "5.0.0", "5.0.1", "5.1.0"}

// Size is the amount of example data.
type Size struct{ Users, Rules int }

// Small is a size for quick tests.
var Small = Size{Users: 40, Rules: 100}

// ConfigFile is the broker's configuration file.
const ConfigFile = libfoo.ConfigFile

// Time is the time Build records for the hooks it applies, so that its
// output is the same on every run.
var Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// batch is the number of records Load writes per transaction.
const batch = 10000

var tenants = []string{"acme", "globex", "initech", ""}

// Username returns the name of user i.
func Username(i int) string {
	if t := tenants[i%len(tenants)]; t != "" {
		return fmt.Sprintf("%s@device-%06d", t, i)
	}
	return fmt.Sprintf("device-%06d", i)
}

// userTenant returns the tenant whose table holds the rules of user i
// after hook 100: the tenant the data was generated with, "default" for
// a user without one. The data check uses it instead of the hook's own
// hooks.Tenant, so that a wrong hook cannot make its own expectation.
func userTenant(i int) string {
	if t := tenants[i%len(tenants)]; t != "" {
		return t
	}
	return "default"
}

// ruleUser returns the index of the user of ACL rule j.
func ruleUser(j int, size Size) int { return j * 7 % size.Users }

// userIndex reverses Username.
func userIndex(name string) (int, bool) {
	var i int
	for p := 0; p+len("device-") <= len(name); p++ {
		if name[p:p+len("device-")] == "device-" {
			if _, err := fmt.Sscanf(name[p+len("device-"):], "%06d", &i); err != nil {
				return 0, false
			}
			return i, Username(i) == name
		}
	}
	return 0, false
}

// UserKey returns the key of user i in the data of release.
func UserKey(i int, release string) []byte {
	if atLeast(release, "5.0.0") {
		return []byte(libfoo.UserPrefix + Username(i))
	}
	return []byte(Username(i))
}

// UserValue returns the record of user i in the data of release.
func UserValue(i int, release string) []byte {
	salt := sha256.Sum256(fmt.Appendf(nil, "salt %d", i))
	hash := sha256.Sum256(fmt.Appendf(nil, "%x:password %d", salt[:8], i))
	user := map[string]any{
		"password_hash": hex.EncodeToString(hash[:]),
		"salt":          hex.EncodeToString(salt[:8]),
		"is_superuser":  i%50 == 0,
	}
	if atLeast(release, "5.0.1") {
		user["password_hash_algorithm"] = "sha256"
	}
	return mustJSON(user)
}

// RuleKey returns the key of ACL rule j.
func RuleKey(j int) []byte { return fmt.Appendf(nil, "%08d", j) }

// Rule returns ACL rule j.
func Rule(j int, size Size) hooks.ACLRule {
	u := ruleUser(j, size)
	return hooks.ACLRule{
		Username:   Username(u),
		Topic:      fmt.Sprintf("devices/%06d/#", u),
		Action:     []string{"publish", "subscribe", "all"}[j%3],
		Permission: map[bool]string{true: "deny", false: "allow"}[j%5 == 0],
	}
}

// RuleValue returns the record of ACL rule j.
func RuleValue(j int, size Size) []byte { return mustJSON(Rule(j, size)) }

// Config returns broker.json as release writes it.
func Config(release string) []byte {
	settings := map[string]any{
		"listeners": map[string]any{"tcp": map[string]any{"bind": "0.0.0.0:1883", "max_connections": 1024}},
		"log_level": "warning",
	}
	if atLeast(release, "5.0.0") {
		settings["authorization"] = map[string]any{"no_match": "deny"}
	} else {
		settings["acl_nomatch"] = "deny"
	}
	out, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(out, '\n')
}

func mustJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return out
}

func atLeast(release, v string) bool {
	return !semver.MustParse(release).LessThan(semver.MustParse(v))
}

// Registry returns reg as the release would have had it: the hooks
// introduced up to release, and that release.
func Registry(reg *hook.Registry, release string) (*hook.Registry, error) {
	r, err := semver.StrictNewVersion(release)
	if err != nil {
		return nil, fmt.Errorf("release %q: %w", release, err)
	}
	out := &hook.Registry{Product: reg.Product, Release: release, MinDataVersion: reg.MinDataVersion}
	for _, h := range reg.Hooks {
		v, err := semver.StrictNewVersion(h.IntroducedIn)
		if err != nil {
			return nil, fmt.Errorf("hook %d: %w", h.Num, err)
		}
		if !v.GreaterThan(r) {
			out.Hooks = append(out.Hooks, h)
		}
	}
	out.Digest = out.ComputeDigest()
	return out, nil
}

// Load writes the data of release 4.4.0 into the empty store st: the
// metadata of a 4.4.0 install (data version 4.4.0, no hook tracked yet),
// the users, the ACL rules and broker.json, many records per transaction.
func Load(st store.Store, reg *hook.Registry, size Size) error {
	r44, err := Registry(reg, "4.4.0")
	if err != nil {
		return err
	}
	if err := upgrade.Init(st, r44); err != nil {
		return fmt.Errorf("loading example data: %w", err)
	}
	var tx store.Tx
	n := 0
	put := func(table string, k, v []byte) error {
		if tx == nil {
			if tx, err = st.Begin(true); err != nil {
				return err
			}
		}
		t, err := tx.CreateTable(table)
		if err != nil {
			return err
		}
		if err := t.Put(k, v); err != nil {
			return err
		}
		if n++; n%batch == 0 {
			err, tx = tx.Commit(), nil
			return err
		}
		return nil
	}
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	for i := range size.Users {
		if err := put("users", UserKey(i, "4.4.0"), UserValue(i, "4.4.0")); err != nil {
			return fmt.Errorf("loading example data: %w", err)
		}
	}
	for j := range size.Rules {
		if err := put("acl", RuleKey(j), RuleValue(j, size)); err != nil {
			return fmt.Errorf("loading example data: %w", err)
		}
	}
	if err := put(store.ConfigTable, []byte(ConfigFile), store.EncodeConfigFile(0o644, Config("4.4.0"))); err != nil {
		return fmt.Errorf("loading example data: %w", err)
	}
	if tx != nil {
		err, tx = tx.Commit(), nil
		if err != nil {
			return fmt.Errorf("loading example data: %w", err)
		}
	}
	return nil
}

// Build writes the data of release into the empty store st: Load, then an
// offline upgrade with the hooks of reg introduced up to release, recorded
// at [Time].
func Build(ctx context.Context, st store.Store, reg *hook.Registry, release string, size Size) error {
	if err := Load(st, reg, size); err != nil {
		return err
	}
	r, err := Registry(reg, release)
	if err != nil {
		return err
	}
	if _, err := upgrade.Run(ctx, st, r, upgrade.Options{Now: func() time.Time { return Time }}); err != nil {
		return fmt.Errorf("building the data of release %s: %w", release, err)
	}
	return nil
}
