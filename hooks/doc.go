// Package hooks holds the upgrade hooks of the example product, a small MQTT
// broker whose store keeps a built-in user database (table "users") and
// access-control rules (table "acl"), and whose configuration file is
// broker.json. registry.yaml lists the hooks in order:
//
//   - 98, 5.0.0, offline, [github.com/hookreg/hookreg/hooks/libfoo.UpgradeLibFoo]:
//     users are keyed by authenticator group ("mqtt:<username>") and the
//     setting acl_nomatch of broker.json becomes authorization.no_match;
//   - 99, 5.0.1, online, [github.com/hookreg/hookreg/hooks/libbar.UpgradeLibBar]:
//     every user record gains "password_hash_algorithm": "sha256";
//   - 100, 5.1.0, offline, [UpgradeLibBaz]: the table "acl" is split into
//     one table per tenant, "acl.<tenant>", in batches.
//
// The records, as release 4.4.0 wrote them:
//
//	users  "acme@device-000004" → {"is_superuser":false,"password_hash":"9f86…","salt":"c0ff…"}
//	acl    "00000001"           → {"username":"acme@device-000007","topic":"devices/000007/#","action":"subscribe","permission":"allow"}
//
// A hook is a plain function of the hook runtime: it reads and writes tables
// through [hook.Tx] and never sees the store behind it. Copy these.
package hooks
