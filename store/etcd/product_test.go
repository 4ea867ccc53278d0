package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

func TestProduct(t *testing.T) {
	ctx := context.Background()
	st := open(t, Options{})
	storetest.Put(t, st, "users", "alice", "1")
	cli := client(t, cluster)
	switched := make(chan int64, 4)
	p, err := OpenProduct(ctx, cli, prefix(t)+"/", func(g int64) { switched <- g })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Generation() != 1 {
		t.Fatalf("generation %d, want 1", p.Generation())
	}
	if err := p.Put(ctx, "users", []byte("bob"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v, err := p.Get(ctx, "users", []byte("alice")); err != nil || string(v) != "1" {
		t.Errorf("Get: %q, %v", v, err)
	}
	if got := storetest.Records(t, st, "users"); got["bob"] != "2" {
		t.Errorf("the store reads %q after the product's write", got)
	}
	if err := p.Put(ctx, "nosuch", []byte("k"), nil); !errors.Is(err, hook.ErrNoTable) {
		t.Errorf("Put into a missing table: %v", err)
	}
	if err := p.Put(ctx, store.MetaTable, []byte("k"), nil); !errors.Is(err, store.ErrBadName) {
		t.Errorf("Put into the metadata: %v", err)
	}
	if err := p.Delete(ctx, "users", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx, "users", []byte("alice")); !errors.Is(err, hook.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}

	// A restore builds generation 2 and switches to it.
	pr := prefix(t)
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpPut(pr+"/gen/2", ""), clientv3.OpPut(pr+"/g/2/m/users", ""),
		clientv3.OpPut(pr+"/g/2/t/users/carol", "3"), clientv3.OpPut(pr+"/current", "2"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-switched:
		if g != 2 {
			t.Fatalf("switched to %d, want 2", g)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the product did not notice the switch")
	}
	if err := p.Put(ctx, "users", []byte("dave"), []byte("4")); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Records(t, st, "users"); got["dave"] != "4" || got["carol"] != "3" || len(got) != 2 {
		t.Errorf("generation 2 holds %q", got)
	}

	// A write racing a switch (the product still on generation 1) is
	// refused, and the product moves on.
	p.gen.Store(1)
	if err := p.Put(ctx, "users", []byte("eve"), []byte("5")); !errors.Is(err, ErrGenerationChanged) {
		t.Fatalf("write on a left generation: %v, want ErrGenerationChanged", err)
	}
	if g := p.Generation(); g != 2 {
		t.Errorf("after the refused write the product is on generation %d, want 2", g)
	}
	if got := raw(t, cli, pr+"/g/1/t/users/eve"); len(got) != 0 {
		t.Errorf("the write landed in the left generation: %q", got)
	}
}

// TestProductWritesDuringHookCommits: a product writes while a migrator's
// transactions rewrite the same table from their snapshots; no product
// write is lost.
func TestProductWritesDuringHookCommits(t *testing.T) {
	ctx := context.Background()
	st := open(t, Options{})
	const keys = "abcdefgh"
	var kv []string
	for _, k := range keys {
		kv = append(kv, string(k), "0")
	}
	storetest.Put(t, st, "t", kv...)
	p, err := OpenProduct(ctx, client(t, cluster), prefix(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stop := make(chan struct{})
	done := make(chan error)
	last := map[string]string{} // the product's last value per key; read after done
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			k, v := string(keys[n%len(keys)]), fmt.Sprintf("p%d", n)
			if err := p.Put(ctx, "t", []byte(k), []byte(v)); err != nil {
				done <- err
				return
			}
			last[k] = v
		}
	}()
	conflicts := 0
	for i := range 30 {
		// The hook appends "h" to every value it reads.
		tx := begin(t, st, true)
		tb, err := tx.Table("t")
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Scan(nil, func(k, v []byte) error {
			return tb.Put(k, append(v, 'h'))
		}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			time.Sleep(10 * time.Millisecond) // let product writes overlap
		}
		switch err := tx.Commit(); {
		case errors.Is(err, ErrConflict):
			conflicts++
		case err != nil:
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Every key holds the product's last write, with the hooks' marks
	// after it: a hook commit from a snapshot older than that write
	// would have replaced it.
	got := storetest.Records(t, st, "t")
	for k, v := range last {
		if !strings.HasPrefix(got[k], v) || strings.Trim(got[k][len(v):], "h") != "" {
			t.Errorf("%s = %q, want the product's last write %q", k, got[k], v)
		}
	}
	if conflicts == 0 {
		t.Error("no hook commit overlapped a product write: the test proves nothing")
	}
	t.Logf("%d of 30 hook commits conflicted with the product", conflicts)
}
