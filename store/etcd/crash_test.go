package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hookreg/hookreg/internal/etcdtest"
)

// TestLeaderKilled SIGKILLs the leader of a cluster of member processes
// while a migrator commits transactions that each read a counter, write it
// plus one and rewrite 60 records with the new value. After every commit
// the store must show it applied exactly once when Commit succeeded, not at
// all when Commit failed with anything but ErrOutcomeUnknown, and never
// half: every record carries the counter.
func TestLeaderKilled(t *testing.T) {
	c := startCluster(t, etcdtest.Config{Members: 3, Processes: true})
	st := open(t, Options{Endpoints: c.Endpoints, RequestTimeout: 3 * time.Second})
	put(t, st, "c", "n", "0")
	killed := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		leader, err := c.Leader(context.Background())
		if err == nil {
			err = c.Kill(leader)
		}
		killed <- err
	}()
	n, ok, failed := 0, 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 60 || len(killed) == 0 && time.Now().Before(deadline); i++ {
		err := increment(t, st)
		got := counter(t, st)
		switch {
		case err == nil:
			ok++
			if got != n+1 {
				t.Fatalf("commit %d succeeded: counter %d, want %d", i, got, n+1)
			}
		case errors.Is(err, ErrOutcomeUnknown):
			failed++
			if got != n && got != n+1 {
				t.Fatalf("commit %d of unknown outcome: counter %d, want %d or %d", i, got, n, n+1)
			}
		default:
			failed++
			if got != n {
				t.Fatalf("commit %d failed (%v): counter %d, want %d", i, err, got, n)
			}
		}
		n = got
	}
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	if n == 0 || ok < 50 {
		t.Errorf("only %d of the commits succeeded", ok)
	}
	t.Logf("%d commits applied, %d failed cleanly around the leader's death", ok, failed)
}

// increment is one migrator transaction: the counter plus one, and 60
// records set to the new value.
func increment(t *testing.T, st *Store) error {
	t.Helper()
	tx, err := st.Begin(true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tb, err := tx.Table("c")
	if err != nil {
		return err
	}
	v, err := tb.Get([]byte("n"))
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		t.Fatal(err)
	}
	next := []byte(strconv.Itoa(n + 1))
	if err := tb.Put([]byte("n"), next); err != nil {
		return err
	}
	for i := range 60 {
		if err := tb.Put(fmt.Appendf(nil, "r%02d", i), next); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// counter reads the counter and checks that every record carries it.
func counter(t *testing.T, st *Store) int {
	t.Helper()
	var recs map[string]string
	for range 50 {
		tx, err := st.Begin(false)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		tx.Rollback()
		recs = records(t, st, "c")
		break
	}
	n, err := strconv.Atoi(recs["n"])
	if err != nil {
		t.Fatalf("counter %q: %v", recs["n"], err)
	}
	for k, v := range recs {
		if k != "n" && v != recs["n"] {
			t.Fatalf("half-applied transaction: %s = %s, counter %s", k, v, recs["n"])
		}
	}
	return n
}
