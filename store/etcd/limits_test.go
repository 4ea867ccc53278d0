package etcd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hookreg/hookreg/internal/etcdtest"
	"github.com/hookreg/hookreg/internal/storetest"
	"github.com/hookreg/hookreg/store"
)

// startCluster starts a one-member cluster of the test's own.
func startCluster(t testing.TB, cfg etcdtest.Config) *etcdtest.Cluster {
	t.Helper()
	c, err := etcdtest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// putN writes n records of size bytes into table in one transaction and
// commits it.
func putN(t testing.TB, st *Store, table string, n, size int) error {
	t.Helper()
	tx := begin(t, st, true)
	tb, err := tx.CreateTable(table)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := tb.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{'v'}, size)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// wantLimitError checks err is a *LimitError that tells what to do.
func wantLimitError(t testing.TB, err error, writes int) *LimitError {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want a *LimitError", err)
	}
	if le.Writes != writes {
		t.Errorf("LimitError.Writes = %d, want %d", le.Writes, writes)
	}
	for _, s := range []string{fmt.Sprintf("%d writes", writes), "--max-txn-ops", "--max-request-bytes", "offline"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	return le
}

// wantStoreRefusal checks err is a *LimitError of the store's own check,
// made before sending anything.
func wantStoreRefusal(t testing.TB, err error, writes int) {
	t.Helper()
	if le := wantLimitError(t, err, writes); le.Server != nil {
		t.Errorf("the cluster refused the transaction (%v), want the store to refuse it before sending", le.Server)
	}
}

// tableExists reports whether the last committed state has table.
func tableExists(t testing.TB, st store.Store, table string) bool {
	t.Helper()
	tx := begin(t, st, false)
	defer tx.Rollback()
	names, err := tx.Tables()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == table {
			return true
		}
	}
	return false
}

func TestLimitOps(t *testing.T) {
	st := open(t, Options{})
	// A new table takes a compare and an operation for its marker.
	tx := begin(t, st, true).(*Tx)
	if _, err := tx.CreateTable("fits"); err != nil {
		t.Fatal(err)
	}
	if w, _ := tx.Room(); w != 125 {
		t.Errorf("Room() in a transaction creating a table: %d writes, want 125", w)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// 126 writes: 128 compares (lock, generation, one per key) and 127
	// operations, the most a default cluster takes.
	tx = begin(t, st, true).(*Tx)
	tb, err := tx.Table("fits")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 126 {
		if w, _ := tx.Room(); w != 126-i {
			t.Fatalf("Room() before write %d: %d writes, want %d", i, w, 126-i)
		}
		if err := tb.Put(fmt.Appendf(nil, "k%05d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("126 writes: %v", err)
	}
	if got := len(storetest.Records(t, st, "fits")); got != 126 {
		t.Errorf("%d records written, want 126", got)
	}
	// 127 writes fail before anything is written.
	wantStoreRefusal(t, putN(t, st, "toomany", 127, 1), 127)
	if tableExists(t, st, "toomany") {
		t.Error("the refused transaction created its table")
	}
	// A write that could never fit fails at once: the 128th.
	wantStoreRefusal(t, putN(t, st, "toomany", 200, 1), 128)
}

func TestLimitBytes(t *testing.T) {
	st := open(t, Options{})
	limit := st.Limits().requestBytes("")
	// One value sized so that the request is exactly the limit.
	tx := begin(t, st, true).(*Tx)
	tb, err := tx.CreateTable("t")
	if err != nil {
		t.Fatal(err)
	}
	size := limit - 1000
	for range 3 {
		if err := tb.Put([]byte("big"), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		p, err := tx.plan()
		if err != nil {
			t.Fatal(err)
		}
		size += limit - p.size
	}
	if p, _ := tx.plan(); p.size != limit {
		t.Fatalf("could not size a request of %d bytes (got %d)", limit, p.size)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("a request of exactly %d bytes: %v", limit, err)
	}
	// A value as large as Room allows fits.
	tx = begin(t, st, true).(*Tx)
	tb, err = tx.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	_, room := tx.Room()
	if room < limit-4096 {
		t.Errorf("Room() in an empty transaction: %d bytes of a %d-byte limit", room, limit)
	}
	if err := tb.Put([]byte("k"), make([]byte, room-1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("a value of the size Room allows: %v", err)
	}
	// One byte more is refused before anything is written.
	tx = begin(t, st, true).(*Tx)
	tb, err = tx.CreateTable("over")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Put([]byte("big"), make([]byte, size+1)); err != nil {
		t.Fatal(err)
	}
	wantStoreRefusal(t, tx.Commit(), 1)
	if tableExists(t, st, "over") {
		t.Error("the refused transaction created its table")
	}
}

// TestLimitsOfTheCluster: limits raised on a cluster are usable once the
// store's match; a store that claims more than its cluster allows gets the
// cluster's refusal, with the same advice and nothing written.
func TestLimitsOfTheCluster(t *testing.T) {
	raised := startCluster(t, etcdtest.Config{MaxTxnOps: 512, MaxRequestBytes: 3 << 20})
	big := Limits{MaxTxnOps: 512, MaxRequestBytes: 3 << 20, MaxCallSendBytes: 4 << 20}
	st := open(t, Options{Endpoints: raised.Endpoints, Limits: big})
	if err := putN(t, st, "many", 500, 10); err != nil {
		t.Errorf("500 writes on a cluster with --max-txn-ops 512: %v", err)
	}
	if err := putN(t, st, "large", 25, 100<<10); err != nil {
		t.Errorf("2.5 MiB on a cluster with --max-request-bytes 3 MiB: %v", err)
	}
	// The client's send limit counts too.
	small := open(t, Options{Endpoints: raised.Endpoints, Prefix: prefix(t) + "-send", Limits: Limits{MaxTxnOps: 512, MaxRequestBytes: 3 << 20, MaxCallSendBytes: 1 << 20}})
	err := putN(t, small, "large", 12, 100<<10)
	wantStoreRefusal(t, err, 11)
	if !strings.Contains(err.Error(), "client send limit 1048576") {
		t.Errorf("error %q does not name the client send limit", err)
	}

	// The default cluster refuses what its limits do not allow.
	wrong := open(t, Options{Limits: big})
	err = putN(t, wrong, "many", 200, 10)
	if le := wantLimitError(t, err, 200); le.Server == nil {
		t.Errorf("200 writes on a default cluster: %v, want the cluster's refusal", err)
	}
	err = putN(t, wrong, "large", 17, 100<<10)
	if le := wantLimitError(t, err, 17); le.Server == nil {
		t.Errorf("1.7 MiB on a default cluster: %v, want the cluster's refusal", err)
	}
	for _, table := range []string{"many", "large"} {
		if tableExists(t, wrong, table) {
			t.Errorf("a refused transaction created table %s", table)
		}
	}
}

func TestQuota(t *testing.T) {
	c := startCluster(t, etcdtest.Config{QuotaBackendBytes: 4 << 20})
	st := open(t, Options{Endpoints: c.Endpoints})
	var err error
	for i := 0; i < 40 && err == nil; i++ {
		err = putN(t, st, fmt.Sprintf("t%d", i), 10, 100<<10)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("writing 40 MiB into a 4 MiB quota: %v, want ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), "quota") {
		t.Errorf("error %q does not name the quota", err)
	}
	status, err := st.Status()
	if err != nil {
		t.Fatal(err)
	}
	if status.DBSizeQuota != 4<<20 || status.DBSize == 0 || len(status.Alarms) != 1 || !strings.Contains(status.Alarms[0], "NOSPACE") {
		t.Errorf("status of a full cluster: %+v", status)
	}
}
