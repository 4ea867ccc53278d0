package hooktest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/hooktest"
)

func itob(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// TestNestedHooks runs, through the upgrade engine, the three kinds of hook
// a product with nested buckets writes: one that rewrites records three
// levels deep, one that adds an index bucket inside an existing bucket in
// batches, and one that creates records under IDs from the sequence; the
// product's next ID then follows the migrated ones.
func TestNestedHooks(t *testing.T) {
	st := hooktest.New(t)
	for _, tenant := range []string{"eu", "us"} {
		for i := 1; i <= 5; i++ {
			st.PutBytesIn([]string{"tenants", tenant, "users"}, itob(uint64(i)), fmt.Appendf(nil, "user-%s-%d", tenant, i))
		}
		st.SetSequence([]string{"tenants", tenant, "users"}, 5)
	}

	rewrite := func(ctx context.Context, tx hook.Tx) error {
		tenants, err := tx.Table("tenants")
		if err != nil {
			return err
		}
		names, err := tenants.Tables()
		if err != nil {
			return err
		}
		for _, tenant := range names {
			users, err := hook.OpenPath(tenants, tenant, "users")
			if err != nil {
				return err
			}
			err = users.Scan(nil, func(k, v []byte) error {
				return users.Put(k, []byte(strings.ToUpper(string(v))))
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	index := func(ctx context.Context, tx hook.Tx) error {
		idx, err := hook.CreatePath(tx, "tenants", "eu", "by-name")
		if err != nil {
			return err
		}
		return hook.EachBatchPath(ctx, tx, "index", []string{"tenants", "eu", "users"}, 2, func(k, v []byte) error {
			return idx.Put(v, k)
		})
	}
	create := func(ctx context.Context, tx hook.Tx) error {
		users, err := hook.OpenPath(tx, "tenants", "us", "users")
		if err != nil {
			return err
		}
		id, err := users.NextSequence()
		if err != nil {
			return err
		}
		return users.Put(itob(id), []byte("ADMIN"))
	}
	for i, fn := range []hook.Func{rewrite, index, create} {
		h := hook.Hook{Num: 101 + i, IntroducedIn: "2.0.0", AllowOnline: true, Name: fmt.Sprint("H", i), Func: fn}
		if err := st.Run(h); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := st.GetIn([]string{"tenants", "eu", "users"}, string(itob(3))); v != "USER-EU-3" {
		t.Errorf("record three levels deep = %q, want it rewritten", v)
	}
	if got := st.TablesIn("tenants", "eu"); !slices.Equal(got, []string{"by-name", "users"}) {
		t.Errorf("tables in tenants/eu = %q", got)
	}
	if got := len(st.RecordsIn("tenants", "eu", "by-name")); got != 5 {
		t.Errorf("index has %d records, want 5", got)
	}
	if got := st.Sequence("tenants", "us", "users"); got != 6 {
		t.Errorf("sequence after the hook = %d, want 6", got)
	}
	if v, _ := st.GetIn([]string{"tenants", "us", "users"}, string(itob(6))); v != "ADMIN" {
		t.Errorf("created record = %q", v)
	}
}

// TestNestedHandlesSurviveCheckpoints: a nested table's handle obtained
// before a checkpoint writes into the same table after it, and an
// interrupted EachBatchPath resumes after its last batch.
func TestNestedHandlesSurviveCheckpoints(t *testing.T) {
	st := hooktest.New(t)
	for i := 1; i <= 10; i++ {
		st.PutBytesIn([]string{"a", "b", "src"}, itob(uint64(i)), []byte("v"))
	}
	calls := 0
	failAt := 7
	fn := func(ctx context.Context, tx hook.Tx) error {
		dst, err := hook.CreatePath(tx, "a", "b", "dst")
		if err != nil {
			return err
		}
		return hook.EachBatchPath(ctx, tx, "copy", []string{"a", "b", "src"}, 3, func(k, v []byte) error {
			calls++
			if calls == failAt {
				return errors.New("interrupted")
			}
			return dst.Put(k, v)
		})
	}
	h := hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Copy", Func: fn}
	if err := st.Run(h); err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	if got := len(st.RecordsIn("a", "b", "dst")); got != 6 {
		t.Errorf("after the interruption dst holds %d records, want the 6 of two committed batches", got)
	}
	failAt = -1
	calls = 0
	if err := st.Run(h); err != nil {
		t.Fatal(err)
	}
	if calls != 4 {
		t.Errorf("the re-run visited %d records, want the 4 after the last batch", calls)
	}
	if got := len(st.RecordsIn("a", "b", "dst")); got != 10 {
		t.Errorf("dst holds %d records, want 10", got)
	}
}

// TestCopyTableKeepsEverything: the large-table pattern (CopyTable, then
// DropTree) carries nested tables and sequences at every depth, and the
// plain drop refuses to lose them.
func TestCopyTableKeepsEverything(t *testing.T) {
	st := hooktest.New(t)
	st.PutIn([]string{"old"}, "r1", "one")
	st.PutIn([]string{"old", "inner"}, "r2", "two")
	st.PutIn([]string{"old", "inner", "deeper"}, "r3", "three")
	st.SetSequence([]string{"old"}, 9)
	st.SetSequence([]string{"old", "inner", "deeper"}, 4)

	drop := func(ctx context.Context, tx hook.Tx) error { return tx.DropTable("old") }
	err := st.Run(hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Drop", Func: drop})
	if !errors.Is(err, hook.ErrNotFlat) {
		t.Fatalf("dropping a table holding nested tables = %v, want ErrNotFlat", err)
	}
	if st.Sequence("old", "inner", "deeper") != 4 {
		t.Fatal("the refused drop changed the store")
	}

	move := func(ctx context.Context, tx hook.Tx) error {
		err := hook.CopyTable(ctx, tx, "move", []string{"old"}, []string{"new"}, 1, func(k, v []byte) ([]byte, error) {
			return []byte(strings.ToUpper(string(v))), nil
		})
		if err != nil {
			return err
		}
		return hook.DropTree(tx, "old")
	}
	if err := st.Run(hook.Hook{Num: 102, IntroducedIn: "2.0.0", Name: "Move", Func: move}); err != nil {
		t.Fatal(err)
	}
	if got := st.Tables(); !slices.Equal(got, []string{"new"}) {
		t.Errorf("tables = %q", got)
	}
	if v, _ := st.GetIn([]string{"new"}, "r1"); v != "ONE" {
		t.Errorf("new/r1 = %q", v)
	}
	if v, _ := st.GetIn([]string{"new", "inner", "deeper"}, "r3"); v != "three" {
		t.Errorf("new/inner/deeper/r3 = %q", v)
	}
	if a, b := st.Sequence("new"), st.Sequence("new", "inner", "deeper"); a != 9 || b != 4 {
		t.Errorf("sequences = %d, %d; want 9, 4", a, b)
	}
}

// TestHookNamesThatReadAsPaths: a hook cannot create a table whose name
// holds "/", which would print as a nested path.
func TestHookNamesThatReadAsPaths(t *testing.T) {
	st := hooktest.New(t)
	st.CreateTable("a")
	for _, fn := range []hook.Func{
		func(ctx context.Context, tx hook.Tx) error { _, err := tx.CreateTable("a/b"); return err },
		func(ctx context.Context, tx hook.Tx) error {
			a, err := tx.Table("a")
			if err != nil {
				return err
			}
			_, err = a.CreateTable("b/c")
			return err
		},
	} {
		err := st.Run(hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Slash", Func: fn})
		if err == nil || !strings.Contains(err.Error(), "nested path") {
			t.Errorf("creating a name with a slash = %v", err)
		}
	}
	if got := st.Tables(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("tables = %q", got)
	}
}

// TestCopyTableResumesAfterItsSourceIsDropped: a hook that moves two tables
// in a row (CopyTable, then DropTree, of each) and stops during the second
// copy resumes: the first copy, done and its source dropped by a committed
// checkpoint, is not attempted again.
func TestCopyTableResumesAfterItsSourceIsDropped(t *testing.T) {
	st := hooktest.New(t)
	for _, tb := range []string{"a", "b"} {
		for i := 1; i <= 3; i++ {
			st.PutIn([]string{tb}, fmt.Sprint(i), tb)
		}
		st.PutIn([]string{tb, "inner"}, "x", "y")
		st.SetSequence([]string{tb}, 7)
	}
	fail := true
	move := func(ctx context.Context, tx hook.Tx) error {
		for _, tb := range []string{"a", "b"} {
			err := hook.CopyTable(ctx, tx, "move-"+tb, []string{tb}, []string{tb + "2"}, 1, func(k, v []byte) ([]byte, error) {
				if tb == "b" && string(k) == "2" && fail {
					return nil, errors.New("stopped during the second copy")
				}
				return v, nil
			})
			if err != nil {
				return err
			}
			if err := hook.DropTree(tx, tb); err != nil {
				return err
			}
		}
		return nil
	}
	h := hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Move", Func: move}
	if err := st.Run(h); err == nil {
		t.Fatal("the first run did not fail")
	}
	// The first copy's source was dropped by a committed checkpoint of
	// the second copy.
	if got := st.Tables(); !slices.Equal(got, []string{"a2", "b", "b2"}) {
		t.Fatalf("tables after the failed run = %q", got)
	}
	fail = false
	if err := st.Run(h); err != nil {
		t.Fatalf("the run after the failure: %v", err)
	}
	if got := st.Tables(); !slices.Equal(got, []string{"a2", "b2"}) {
		t.Errorf("tables = %q", got)
	}
	for _, tb := range []string{"a2", "b2"} {
		if got := len(st.RecordsIn(tb)); got != 3 {
			t.Errorf("%s holds %d records, want 3", tb, got)
		}
		if v, _ := st.GetIn([]string{tb, "inner"}, "x"); v != "y" {
			t.Errorf("%s/inner/x = %q", tb, v)
		}
		if s := st.Sequence(tb); s != 7 {
			t.Errorf("%s's sequence = %d", tb, s)
		}
	}
}

// stopAfter is a context whose Err fails from its n-th call on:
// EachBatchPath asks it once per batch, so a copy stops between two batches.
type stopAfter struct {
	context.Context
	n *int
}

func (c stopAfter) Err() error {
	if *c.n--; *c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// TestCopyTableReplacesATable: a hook that replaces a table in place (copy
// it out, drop it, copy it back, drop the copy) and stops during the copy
// back loses nothing when it runs again: the drop runs again too, and the
// copy back, its destination gone, starts from the first record instead of
// resuming after its last batch (or skipping its finished first phase when
// it stopped in a nested table).
func TestCopyTableReplacesATable(t *testing.T) {
	// Err's calls: the copy out takes 1-4 (3 batches of records and the
	// empty one) and 5-6 (inner's 2 batches); the copy back 7-10 and
	// 11-12. It stops after the copy back's first batch (8), before its
	// first phase ends (10), before inner's first batch (11) and after it
	// (12).
	for _, stop := range []int{8, 10, 11, 12} {
		t.Run(fmt.Sprint(stop), func(t *testing.T) {
			st := tableToReplace(t)
			calls := 0
			replace := func(ctx context.Context, tx hook.Tx) error {
				if calls > 0 {
					ctx = stopAfter{ctx, &calls}
				}
				if err := hook.CopyTable(ctx, tx, "out", []string{"a"}, []string{"tmp"}, 2, nil); err != nil {
					return err
				}
				if err := hook.DropTree(tx, "a"); err != nil {
					return err
				}
				if err := hook.CopyTable(ctx, tx, "back", []string{"tmp"}, []string{"a"}, 2, func(k, v []byte) ([]byte, error) {
					return []byte(strings.ToUpper(string(v))), nil
				}); err != nil {
					return err
				}
				return hook.DropTree(tx, "tmp")
			}
			runStoppedThenAgain(t, st, hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Replace", Func: replace}, &calls, stop)
			if got := st.Tables(); !slices.Equal(got, []string{"a"}) {
				t.Errorf("tables = %q", got)
			}
			if got := st.RecordsIn("a"); len(got) != 6 || got["1"] != "V" || got["6"] != "V" {
				t.Errorf("a = %q, want its 6 records", got)
			}
			if got := st.RecordsIn("a", "inner"); len(got) != 3 {
				t.Errorf("a/inner = %q, want its 3 records", got)
			}
			if s := st.Sequence("a"); s != 6 {
				t.Errorf("a's sequence = %d, want 6", s)
			}
		})
	}
}

// TestGoroutineLeftBehind: a hook that returns while a goroutine it
// started still writes through a table it kept: every write the goroutine
// was told succeeded is in the store, and the writes after the hook
// returned fail, naming it, instead of racing with the commit of its
// transaction (a store transaction is not safe for concurrent use).
func TestGoroutineLeftBehind(t *testing.T) {
	st := hooktest.New(t)
	st.Put("t", "seed", "x")
	type result struct {
		ok  int
		err error
	}
	done := make(chan result, 1)
	leave := func(ctx context.Context, tx hook.Tx) error {
		tb, err := tx.Table("t")
		if err != nil {
			return err
		}
		started := make(chan struct{})
		go func() {
			close(started)
			for i := 0; ; i++ {
				if err := tb.Put(fmt.Appendf(nil, "k%06d", i), []byte("v")); err != nil {
					done <- result{i, err}
					return
				}
			}
		}()
		<-started
		return nil
	}
	if err := st.Run(hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Leave", Func: leave}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if got := len(st.Records("t")) - 1; got != r.ok {
		t.Errorf("the goroutine wrote %d records, the store holds %d of them", r.ok, got)
	}
	if !strings.Contains(r.err.Error(), "hook 101 (Leave): the hook has returned") {
		t.Errorf("the goroutine's write after the hook returned = %v", r.err)
	}
}

// TestHookValueTooLargeForABackup: a hook cannot write a value that no
// backup could carry (the archive format's limit; bbolt takes larger
// ones): online, the upgrade would leave a store that backs up no more,
// and offline its result would be refused after every hook ran.
func TestHookValueTooLargeForABackup(t *testing.T) {
	st := hooktest.New(t)
	st.Put("t", "a", "x")
	big := func(ctx context.Context, tx hook.Tx) error {
		tb, err := tx.Table("t")
		if err != nil {
			return err
		}
		if err := tb.Put([]byte("fits"), make([]byte, 16<<20)); err != nil {
			return err
		}
		return tb.Put([]byte("big"), make([]byte, 16<<20+1))
	}
	err := st.RunOnline(hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Big", AllowOnline: true, Func: big})
	if err == nil || !strings.Contains(err.Error(), "could no longer be backed up") {
		t.Fatalf("a value over the archive format's limit = %v", err)
	}
	if got := st.Records("t"); len(got) != 1 {
		t.Errorf("the failed hook left %d records", len(got))
	}
}

// TestReplaceTable: hook.ReplaceTable replaces a table, nested tables and
// sequence kept, with fn applied once to every record, whether the hook
// stops during the replacement (at every batch of its copies) or at a
// later step, and runs again; no temporary table is left. Steps written
// one after the other (CopyTable, DropTree, CopyTable, DropTree) apply fn
// twice when a later step stops: the first copy, its destination dropped,
// starts again from the table already replaced.
func TestReplaceTable(t *testing.T) {
	// Err's calls: the copy out takes 1-4 (3 batches of records and the
	// empty one) and 5-6 (inner's 2 batches); the copy back 7-10 and
	// 11-12; the later step's batches 13 on. 0 is no stop.
	for _, stop := range []int{0, 2, 5, 8, 10, 11, 12, 13, 14} {
		t.Run(fmt.Sprint(stop), func(t *testing.T) {
			st := tableToReplace(t)
			calls := 0
			replace := func(ctx context.Context, tx hook.Tx) error {
				if calls > 0 {
					ctx = stopAfter{ctx, &calls}
				}
				bang := func(k, v []byte) ([]byte, error) { return append(slices.Clone(v), '!'), nil }
				if err := hook.ReplaceTable(ctx, tx, "bang", []string{"a"}, 2, bang); err != nil {
					return err
				}
				return hook.EachBatch(ctx, tx, "post", "a", 2, func(k, v []byte) error { return nil })
			}
			runStoppedThenAgain(t, st, hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Replace", Func: replace}, &calls, stop)
			if got := st.Tables(); !slices.Equal(got, []string{"a"}) {
				t.Errorf("tables = %q, want the temporary table gone", got)
			}
			got := st.RecordsIn("a")
			for i := 1; i <= 6; i++ {
				if v := got[strconv.Itoa(i)]; v != "v!" {
					t.Errorf("a[%d] = %q, want v! (fn applied once)", i, v)
				}
			}
			if len(got) != 6 {
				t.Errorf("a = %q, want its 6 records", got)
			}
			if got := st.RecordsIn("a", "inner"); len(got) != 3 || got["1"] != "w" {
				t.Errorf("a/inner = %q, want its 3 records as they were", got)
			}
			if s := st.Sequence("a"); s != 6 {
				t.Errorf("a's sequence = %d, want 6", s)
			}
		})
	}
}

// TestProducerLeftBehindStops: a hook that reads a table through a
// producer goroutine and returns early (an error after the first record)
// leaves the producer blocked in its Scan callback; the hook's context
// ends when the hook returns, so a producer that watches it stops, and the
// run returns the hook's error instead of waiting for that Scan forever.
func TestProducerLeftBehindStops(t *testing.T) {
	st := hooktest.New(t)
	for _, k := range []string{"a", "b", "c"} {
		st.Put("t", k, "x")
	}
	early := func(ctx context.Context, tx hook.Tx) error {
		tb, err := tx.Table("t")
		if err != nil {
			return err
		}
		ch := make(chan []byte)
		go func() {
			defer close(ch)
			tb.Scan(nil, func(k, v []byte) error {
				select {
				case ch <- k:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		<-ch
		return errors.New("bad record")
	}
	err := st.Run(hook.Hook{Num: 101, IntroducedIn: "2.0.0", Name: "Early", Func: early})
	if err == nil || !strings.Contains(err.Error(), "bad record") {
		t.Errorf("run = %v, want the hook's error", err)
	}
}

// tableToReplace returns a store with table "a": six records "1"-"6" of
// value "v", a nested table "inner" of three records of value "w", and
// sequence 6.
func tableToReplace(t *testing.T) *hooktest.Store {
	st := hooktest.New(t)
	for i := 1; i <= 6; i++ {
		st.PutIn([]string{"a"}, strconv.Itoa(i), "v")
	}
	for i := 1; i <= 3; i++ {
		st.PutIn([]string{"a", "inner"}, strconv.Itoa(i), "w")
	}
	st.SetSequence([]string{"a"}, 6)
	return st
}

// runStoppedThenAgain runs h stopped at the stop-th check of its context
// (its Func wraps the context in stopAfter while *calls > 0), then runs it
// again to its end; with stop 0, only the second run.
func runStoppedThenAgain(t *testing.T, st *hooktest.Store, h hook.Hook, calls *int, stop int) {
	t.Helper()
	if stop > 0 {
		*calls = stop
		if err := st.Run(h); !errors.Is(err, context.Canceled) {
			t.Fatalf("the first run = %v, want it stopped", err)
		}
		*calls = 0
	}
	if err := st.Run(h); err != nil {
		t.Fatalf("the run after the stop: %v", err)
	}
}
