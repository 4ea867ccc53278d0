package bolt

import (
	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/store"
)

// Borrowed is a store over a *bbolt.DB that its owner opened and keeps:
// a product that holds its bbolt file open for its whole life (bbolt locks
// the file, so no other process can open it meanwhile) upgrades it at
// start-up through one of these. Closing it leaves the DB open.
type Borrowed struct{ *Store }

// FromDB returns the store over db, a writable bbolt database that the
// caller opened and closes. Tables are db's top-level buckets, as with
// [Open]; the metadata table and the configuration table are buckets named
// [store.MetaTable] and [store.ConfigTable].
//
//	db, err := bbolt.Open("acme.db", 0o600, &bbolt.Options{Timeout: time.Second})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	res, err := upgrade.Start(ctx, bolt.FromDB(db), generated.Registry, upgrade.StartOptions{
//		OfflineCommand: "acmectl migrate upgrade --offline --store acme.db",
//	})
func FromDB(db *bbolt.DB) *Borrowed {
	return &Borrowed{&Store{db: db, path: db.Path()}}
}

var _ store.Store = (*Borrowed)(nil)

// Close implements [store.Store]; it does not close the DB, which belongs
// to the caller.
func (b *Borrowed) Close() error { return nil }
