// Package hookreg is an upgrade-hook registry for Go products: the ordered,
// immutable list of data migrations that carries a product's persistent data
// and configuration from one release to the next.
//
// registry.yaml declares the hooks; hookgen (cmd/hookgen) checks them and
// generates the typed registry in generated/; the migrator (cmd/migrator)
// links that registry to back up, restore and upgrade a store. See README.md.
package hookreg

//go:generate go run ./cmd/hookgen generate
