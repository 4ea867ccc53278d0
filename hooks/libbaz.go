package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/hook"
)

// ACLRule is an access-control rule, the value of a record of the table
// "acl" (key: the rule id).
type ACLRule struct {
	Username   string `json:"username"`
	Topic      string `json:"topic"`
	Action     string `json:"action"`
	Permission string `json:"permission"`
}

// Tenant returns the tenant of a user: the part of the username before "@",
// or "default" for a username without one.
func Tenant(username string) string {
	tenant, _, ok := strings.Cut(username, "@")
	if !ok || tenant == "" {
		return "default"
	}
	return tenant
}

// UpgradeLibBaz splits the ACL rules into one table per tenant (5.1.0):
// every record of "acl" is copied, under the same key, to "acl.<tenant>"
// (see [Tenant]), then "acl" is dropped.
//
// The table may be larger than one transaction, so the copy runs with
// [hook.EachBatch]: every batch commits with its progress and a crash
// resumes after the last batch. The hook stays all-or-nothing for the
// broker: "acl" is read, never changed, until the last batch is done, and
// dropped in the transaction that records the hook as applied. Per-tenant
// tables left by an interrupted run hold copies only and are completed by
// the next run.
func UpgradeLibBaz(ctx context.Context, tx hook.Tx) error {
	if _, err := tx.Table("acl"); errors.Is(err, hook.ErrNoTable) {
		return nil
	}
	tenants := map[string]hook.Table{}
	err := hook.EachBatch(ctx, tx, "split-acl", "acl", 0, func(key, value []byte) error {
		var rule ACLRule
		if err := json.Unmarshal(value, &rule); err != nil {
			return fmt.Errorf("acl rule %q: %w", key, err)
		}
		tenant := Tenant(rule.Username)
		t, ok := tenants[tenant]
		if !ok {
			var err error
			if t, err = tx.CreateTable("acl." + tenant); err != nil {
				return fmt.Errorf("acl rule %q of user %q: %w", key, rule.Username, err)
			}
			tenants[tenant] = t
		}
		return t.Put(key, value)
	})
	if err != nil {
		return fmt.Errorf("splitting acl: %w", err)
	}
	return tx.DropTable("acl")
}
