package etcd

import (
	"context"
	"errors"
	"fmt"
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
//   - the product takes no lock: an online upgrade runs while it writes. A
//     hook's commit that overlaps a product write to the same key is
//     refused and the hook re-runs from its last checkpoint, so the
//     product's write is never overwritten from a stale read;
//   - the product writes only tables that exist (the migrator's init and
//     hooks create them) and never the reserved ones (names starting with
//     "_").
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
	return p.lay.records(p.gen.Load(), table) + string(key)
}

// Get returns the value of key in table, or an error wrapping
// hook.ErrNotFound.
func (p *Product) Get(ctx context.Context, table string, key []byte) ([]byte, error) {
	resp, err := p.cli.Get(ctx, p.Key(table, key))
	if err != nil {
		return nil, fmt.Errorf("table %q: getting key %q: %w", table, truncate(key), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("table %q: key %q: %w", table, truncate(key), hook.ErrNotFound)
	}
	return resp.Kvs[0].Value, nil
}

// Put stores value under key in table, fenced on the generation.
func (p *Product) Put(ctx context.Context, table string, key, value []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("table %q: putting an empty key", table)
	}
	return p.write(ctx, table, key, clientv3.OpPut(p.Key(table, key), string(value)))
}

// Delete removes key from table, fenced on the generation.
func (p *Product) Delete(ctx context.Context, table string, key []byte) error {
	return p.write(ctx, table, key, clientv3.OpDelete(p.Key(table, key)))
}

func (p *Product) write(ctx context.Context, table string, key []byte, op clientv3.Op) error {
	if err := store.ValidateName(table); err != nil {
		return err
	}
	if store.IsReserved(table) {
		return fmt.Errorf("%w %q: reserved for hookreg", store.ErrBadName, table)
	}
	g := p.gen.Load()
	marker := p.lay.marker(g, table)
	resp, err := p.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(p.lay.current()), "=", fmt.Sprint(g)), clientv3.Compare(clientv3.CreateRevision(marker), ">", 0)).
		Then(op).
		Else(clientv3.OpGet(p.lay.current())).
		Commit()
	if err != nil {
		return fmt.Errorf("table %q: writing key %q: %w", table, truncate(key), err)
	}
	if resp.Succeeded {
		return nil
	}
	cur := resp.Responses[0].GetResponseRange().Kvs
	if len(cur) > 0 && string(cur[0].Value) == fmt.Sprint(g) {
		return fmt.Errorf("table %q: %w", table, hook.ErrNoTable)
	}
	if len(cur) > 0 {
		if ng, err := parseGeneration(cur[0].Value); err == nil {
			p.switchTo(ng)
		}
	}
	return fmt.Errorf("table %q: writing key %q: %w", table, truncate(key), ErrGenerationChanged)
}

// Close stops watching.
func (p *Product) Close() error {
	p.cancel()
	<-p.done
	return nil
}
