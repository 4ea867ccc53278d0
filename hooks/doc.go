// Package hooks holds the upgrade hooks of the example product, a small MQTT
// broker whose store keeps a built-in user database (table "users") and
// access-control rules (table "acl"), and whose configuration file is
// broker.json. registry.yaml lists the hooks in order.
package hooks
