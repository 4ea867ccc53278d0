// Package libbar holds the 5.0.1 upgrade of user records.
package libbar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hookreg/hookreg/hook"
)

// UpgradeLibBar records the password hash algorithm in every user (5.0.1):
// each record of "users" gains "password_hash_algorithm": "sha256", the
// algorithm of every 4.x hash. It only adds a field, so it runs online.
func UpgradeLibBar(ctx context.Context, tx hook.Tx) error {
	users, err := tx.Table("users")
	if errors.Is(err, hook.ErrNoTable) {
		return nil
	}
	if err != nil {
		return err
	}
	return users.Scan(nil, func(key, value []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var user map[string]json.RawMessage
		if err := json.Unmarshal(value, &user); err != nil {
			return fmt.Errorf("user %q: %w", key, err)
		}
		if _, ok := user["password_hash_algorithm"]; ok {
			return nil
		}
		user["password_hash_algorithm"] = json.RawMessage(`"sha256"`)
		out, err := json.Marshal(user)
		if err != nil {
			return fmt.Errorf("user %q: %w", key, err)
		}
		return users.Put(key, out)
	})
}
