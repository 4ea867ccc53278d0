// Package libfoo holds the 5.0.0 upgrade of the user database.
package libfoo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/hookreg/hookreg/hook"
)

// UserPrefix is the authenticator group of the built-in users: since 5.0.0
// a user is keyed "mqtt:<username>".
const UserPrefix = "mqtt:"

// ConfigFile is the broker's configuration file.
const ConfigFile = "broker.json"

// UpgradeLibFoo keys users by authenticator group and renames the
// acl_nomatch setting (5.0.0). Usernames of 4.4 never contain ':', so a key
// with the prefix is one this hook already moved.
func UpgradeLibFoo(ctx context.Context, tx hook.Tx) error {
	users, err := tx.Table("users")
	switch {
	case errors.Is(err, hook.ErrNoTable):
	case err != nil:
		return err
	default:
		err := users.Scan(nil, func(key, value []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if bytes.HasPrefix(key, []byte(UserPrefix)) {
				return nil
			}
			if err := users.Put(append([]byte(UserPrefix), key...), value); err != nil {
				return err
			}
			return users.Delete(key)
		})
		if err != nil {
			return fmt.Errorf("re-keying users: %w", err)
		}
	}
	return renameNoMatch(tx.Config())
}

// renameNoMatch moves the setting acl_nomatch of broker.json to
// authorization.no_match, keeping every other setting.
func renameNoMatch(cfg hook.Config) error {
	data, err := cfg.ReadFile(ConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var settings map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&settings); err != nil {
		return fmt.Errorf("reading %s: %w", ConfigFile, err)
	}
	noMatch, ok := settings["acl_nomatch"]
	if !ok {
		return nil
	}
	authz, _ := settings["authorization"].(map[string]any)
	if authz == nil {
		authz = map[string]any{}
	}
	authz["no_match"] = noMatch
	settings["authorization"] = authz
	delete(settings, "acl_nomatch")
	out, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", ConfigFile, err)
	}
	return cfg.WriteFile(ConfigFile, append(out, '\n'), 0o644)
}
