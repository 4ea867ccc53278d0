package etcd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// Product is a product's own access to the data of a store on etcd, beside
// the migrator. Its contract:
//   - the product resolves P/current once (OpenProduct) and reads and
//     writes the tables of that generation only;
//   - every write is an etcd txn fenced on the generation (the compare
//     [Product.Fence]: P/current still names it); Put and Delete do it,
//     and a product that builds its own txns adds Fence to their compares.
//     So a write never lands in a generation that a restore has left;
//   - the product watches P/current: when a restore switches generations,
//     the onSwitch function given to OpenProduct runs with the new one, and
//     the product reloads what it cached from the old; a write racing the
//     switch fails with an error wrapping [ErrGenerationChanged] after
//     moving to the new generation, and the product redoes it from fresh
//     reads;
//   - a delete also writes a mark of the generation ([Product.DeleteMark],
//     which a product's own txns that delete add), so that an offline
//     upgrade that read the data before it refuses to switch to data that
//     would bring the record back;
//   - the product takes no lock: an online upgrade runs while it writes. A
//     hook's commit that overlaps a product write to the same key is
//     refused and the hook re-runs from its last checkpoint, so the
//     product's write is never overwritten from a stale read;
//   - the product writes only tables that exist (the migrator's init and
//     hooks create them) and never the reserved ones (names starting with
//     "_");
//   - a nested table (bbolt's bucket in a bucket) is addressed by its
//     path, the top-level table's name first ([Product.GetPath],
//     [Product.PutPath], [Product.DeletePath]); a write is also fenced on
//     its key naming no table nested in the table, so the product never
//     puts a record where a hook made a nested table, nor the reverse;
//   - [Product.NextSequence] takes a table's next sequence value (bbolt's
//     Bucket.NextSequence) in a txn fenced on the generation and on the
//     table's marker, which holds the sequence: a hook's commit that set
//     the same sequence meanwhile is refused, so no ID is handed out
//     twice.
//
// For example:
//
//	p, err := etcd.OpenProduct(ctx, cli, "/broker", func(gen int64) {
//		reloadCaches() // a restore replaced the data
//	})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	err = p.Put(ctx, "users", []byte("alice"), []byte(`{"role":"admin"}`))
//	if errors.Is(err, etcd.ErrGenerationChanged) {
//		// re-read and redo the change on the new generation
//	}
//	id, err := p.NextSequence(ctx, "payments", "by-id")
//	if err == nil {
//		err = p.PutPath(ctx, []string{"payments", "by-id"}, itob(id), payment)
//	}
type Product struct {
	cli      *clientv3.Client
	lay      layout
	gen      atomic.Int64
	onSwitch func(gen int64)
	mu       sync.Mutex // serializes onSwitch calls
	cancel   context.CancelFunc
	done     chan struct{}
}

// OpenProduct resolves the current generation of the store at prefix and
// watches it. onSwitch (nil for none) is called with the new generation,
// one call at a time, whenever the Product moves to another one.
func OpenProduct(ctx context.Context, cli *clientv3.Client, prefix string, onSwitch func(gen int64)) (*Product, error) {
	p := &Product{cli: cli, lay: layout{root: trimPrefix(prefix)}, onSwitch: onSwitch, done: make(chan struct{})}
	if p.lay.root == "" {
		return nil, errors.New("opening the product's store: empty prefix")
	}
	rev, err := p.reload(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the product's store %s: %w", p.lay.root, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.watch(wctx, rev)
	return p, nil
}

// reload reads P/current, records it and returns the revision of the read.
func (p *Product) reload(ctx context.Context) (int64, error) {
	resp, err := p.cli.Get(ctx, p.lay.current())
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("no hookreg store (no key %s)", p.lay.current())
	}
	g, err := parseGeneration(resp.Kvs[0].Value)
	if err != nil {
		return 0, err
	}
	p.switchTo(g)
	return resp.Header.Revision, nil
}

func (p *Product) switchTo(g int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.gen.Swap(g); old != 0 && old != g && p.onSwitch != nil {
		p.onSwitch(g)
	}
}

// watch follows P/current from revision rev on, until Close.
func (p *Product) watch(ctx context.Context, rev int64) {
	defer close(p.done)
	for ctx.Err() == nil {
		for resp := range p.cli.Watch(clientv3.WithRequireLeader(ctx), p.lay.current(), clientv3.WithRev(rev+1)) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				if g, err := parseGeneration(ev.Kv.Value); err == nil && ev.Type == clientv3.EventTypePut {
					p.switchTo(g)
				}
				rev = ev.Kv.ModRevision
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended (compaction, a lost leader): read again and
		// follow from there.
		r, err := p.reload(ctx)
		if err == nil {
			rev = r
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Generation returns the generation the product reads and writes.
func (p *Product) Generation() int64 { return p.gen.Load() }

// Fence returns the compare that fences a write on the product's
// generation.
func (p *Product) Fence() clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(p.lay.current()), "=", fmt.Sprint(p.gen.Load()))
}

// Key returns the etcd key of a record of table in the product's
// generation, for a product that builds its own txns (with Fence).
func (p *Product) Key(table string, key []byte) string {
	return p.KeyPath([]string{table}, key)
}

// KeyPath returns the etcd key of a record of the table at path (a
// top-level table, then the tables nested in it) in the product's
// generation, for a product that builds its own txns (with Fence).
func (p *Product) KeyPath(path []string, key []byte) string {
	return p.lay.records(p.gen.Load(), path) + string(key)
}

// MarkerKey returns the etcd key of the marker of the table at path in
// the product's generation: it exists while the table does, and its value
// is the table's sequence (empty for 0, else decimal). A product that
// builds its own txns compares its create revision (> 0) so as to write
// only into a table that exists.
func (p *Product) MarkerKey(path ...string) string {
	return p.lay.marker(p.gen.Load(), path)
}

// Get returns the value of key in table, or an error wrapping
// hook.ErrNotFound.
func (p *Product) Get(ctx context.Context, table string, key []byte) ([]byte, error) {
	return p.GetPath(ctx, []string{table}, key)
}

// GetPath returns the value of key in the table at path, or an error
// wrapping hook.ErrNotFound (hook.ErrIsTable when key names a table
// nested in it).
func (p *Product) GetPath(ctx context.Context, path []string, key []byte) ([]byte, error) {
	if len(path) == 0 {
		return nil, errors.New("getting a record: empty table path")
	}
	label := pathLabel(path)
	g := p.gen.Load()
	ops := []clientv3.Op{clientv3.OpGet(p.lay.records(g, path) + string(key))}
	if mayName(key) {
		ops = append(ops, clientv3.OpGet(p.lay.marker(g, append(path[:len(path):len(path)], string(key))), clientv3.WithKeysOnly()))
	}
	resp, err := p.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("table %s: getting key %q: %w", label, truncate(key), err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return kvs[0].Value, nil
	}
	if len(resp.Responses) > 1 && len(resp.Responses[1].GetResponseRange().Kvs) > 0 {
		return nil, fmt.Errorf("table %s: key %q: %w", label, truncate(key), hook.ErrIsTable)
	}
	return nil, fmt.Errorf("table %s: key %q: %w", label, truncate(key), hook.ErrNotFound)
}

// Put stores value under key in table, fenced on the generation.
func (p *Product) Put(ctx context.Context, table string, key, value []byte) error {
	return p.PutPath(ctx, []string{table}, key, value)
}

// PutPath stores value under key in the table at path, fenced on the
// generation, on the table's existence and on key naming no table nested
// in it (hook.ErrIsTable).
func (p *Product) PutPath(ctx context.Context, path []string, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("table %s: putting an empty key", pathLabel(path))
	}
	return p.write(ctx, path, key, false, func(ek string) clientv3.Op { return clientv3.OpPut(ek, string(value)) })
}

// Delete removes key from table, fenced on the generation.
func (p *Product) Delete(ctx context.Context, table string, key []byte) error {
	return p.DeletePath(ctx, []string{table}, key)
}

// DeletePath removes key from the table at path, fenced as PutPath.
func (p *Product) DeletePath(ctx context.Context, path []string, key []byte) error {
	return p.write(ctx, path, key, true, func(ek string) clientv3.Op { return clientv3.OpDelete(ek) })
}

// pathLabel names a table in errors: a top-level table's name quoted, a
// nested table's path (hook.FormatPath).
func pathLabel(path []string) string {
	if len(path) == 1 {
		return strconv.Quote(path[0])
	}
	return hook.FormatPath(path)
}

// mayName reports whether key can be a table's name.
func mayName(key []byte) bool { return len(key) > 0 && len(key) <= store.MaxNameLen }

// checkPath refuses a path the product may not write: invalid names, or
// a table reserved for hookreg.
func checkPath(path []string) error {
	if len(path) == 0 {
		return errors.New("writing: empty table path")
	}
	for i := range path {
		if err := store.ValidatePath(path[:i+1]); err != nil {
			return err
		}
	}
	if store.IsReserved(path[0]) {
		return fmt.Errorf("%w %q: reserved for hookreg", store.ErrBadName, path[0])
	}
	return nil
}

func (p *Product) write(ctx context.Context, path []string, key []byte, del bool, op func(ek string) clientv3.Op) error {
	if err := checkPath(path); err != nil {
		return err
	}
	label := pathLabel(path)
	g := p.gen.Load()
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(p.lay.current()), "=", fmt.Sprint(g)),
		clientv3.Compare(clientv3.CreateRevision(p.lay.marker(g, path)), ">", 0),
	}
	var nested string
	if mayName(key) {
		nested = p.lay.marker(g, append(path[:len(path):len(path)], string(key)))
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nested), "=", 0))
	}
	ops := []clientv3.Op{op(p.lay.records(g, path) + string(key))}
	if del {
		ops = append(ops, p.DeleteMark())
	}
	resp, err := p.cli.Txn(ctx).
		If(cmps...).
		Then(ops...).
		Else(clientv3.OpGet(p.lay.current())).
		Commit()
	if err != nil {
		return fmt.Errorf("table %s: writing key %q: %w", label, truncate(key), err)
	}
	if resp.Succeeded {
		return nil
	}
	return p.refused(ctx, g, resp, path, nested, key)
}

// refused explains a fenced write refused: the generation changed (the
// product then moves to the new one), the table is missing, or key names
// a nested table.
func (p *Product) refused(ctx context.Context, g int64, resp *clientv3.TxnResponse, path []string, nested string, key []byte) error {
	label := pathLabel(path)
	cur := resp.Responses[0].GetResponseRange().Kvs
	if len(cur) > 0 && string(cur[0].Value) == fmt.Sprint(g) {
		if nested != "" {
			if r, err := p.cli.Get(ctx, nested, clientv3.WithKeysOnly()); err == nil && len(r.Kvs) > 0 {
				return fmt.Errorf("table %s: key %q: %w", label, truncate(key), hook.ErrIsTable)
			}
		}
		return fmt.Errorf("table %s: %w", label, hook.ErrNoTable)
	}
	if len(cur) > 0 {
		if ng, err := parseGeneration(cur[0].Value); err == nil {
			p.switchTo(ng)
		}
	}
	return fmt.Errorf("table %s: writing: %w", label, ErrGenerationChanged)
}

// DeleteMark is the operation that a product's own txn that deletes
// records adds to its operations (Delete and DeletePath do): it writes a
// key of the generation that no table holds, so that an offline upgrade's
// switch to its upgraded data, which compares that no key of the
// generation was written after its backup, sees the delete too (a
// deleted key leaves nothing to compare) and refuses to switch rather
// than bring the record back.
func (p *Product) DeleteMark() clientv3.Op {
	return clientv3.OpPut(p.lay.deletes(p.gen.Load()), "")
}

// NextSequence increments the sequence of the table at path and returns
// its new value, as a hook's Table.NextSequence does: one txn fenced on
// the generation that writes the table's marker only if nobody wrote it
// since it was read (it reads again and retries when another writer took
// a value meanwhile, until ctx ends). A hook's commit that overlaps it on
// the same table is refused ([ErrConflict]) and re-run, so no two writers
// ever get the same value.
func (p *Product) NextSequence(ctx context.Context, path ...string) (uint64, error) {
	if err := checkPath(path); err != nil {
		return 0, err
	}
	label := pathLabel(path)
	for {
		g := p.gen.Load()
		marker := p.lay.marker(g, path)
		r, err := p.cli.Get(ctx, marker)
		if err != nil {
			return 0, fmt.Errorf("table %s: next sequence: %w", label, err)
		}
		// A missing marker: the txn below fails, and tells whether the
		// table is missing or the generation changed.
		var seq uint64
		var modRev int64
		if len(r.Kvs) > 0 {
			if seq, err = parseSeq(r.Kvs[0].Value); err != nil {
				return 0, fmt.Errorf("table %s: %w", label, err)
			}
			modRev = r.Kvs[0].ModRevision
			if seq == math.MaxUint64 {
				return 0, fmt.Errorf("table %s: next sequence: the sequence is at its maximum", label)
			}
		}
		resp, err := p.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(p.lay.current()), "=", fmt.Sprint(g)),
				clientv3.Compare(clientv3.CreateRevision(marker), ">", 0),
				clientv3.Compare(clientv3.ModRevision(marker), "=", modRev)).
			Then(clientv3.OpPut(marker, encodeSeq(seq+1))).
			Else(clientv3.OpGet(p.lay.current()), clientv3.OpGet(marker, clientv3.WithKeysOnly())).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("table %s: next sequence: %w", label, err)
		}
		if resp.Succeeded {
			return seq + 1, nil
		}
		cur := resp.Responses[0].GetResponseRange().Kvs
		exists := len(resp.Responses[1].GetResponseRange().Kvs) > 0
		if len(cur) > 0 && string(cur[0].Value) == fmt.Sprint(g) && exists {
			// Another writer took a value: read again.
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("table %s: next sequence: %w", label, err)
			}
			continue
		}
		return 0, p.refused(ctx, g, resp, path, "", nil)
	}
}

// Close stops watching.
func (p *Product) Close() error {
	p.cancel()
	<-p.done
	return nil
}
