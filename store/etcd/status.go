package etcd

import (
	"context"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status describes the store and its cluster, for `migrator status`.
type Status struct {
	// Generation is the current generation and Revision the cluster's
	// revision when it was read.
	Generation, Revision int64
	// Tables is the number of tables of the generation.
	Tables int
	// DBSize is the largest backend size of the members that answered,
	// in bytes, and DBSizeQuota the smallest quota
	// (--quota-backend-bytes).
	DBSize, DBSizeQuota int64
	// Members is the number of members that answered, of Endpoints.
	Members, Endpoints int
	// Down are the members that did not answer, each with its cause.
	Down []Member
	// Alarms are the cluster's active alarms (such as NOSPACE), one
	// "member <id>: <alarm>" each.
	Alarms []string
	// Holder is the migrator holding the lock, nil when none does.
	Holder *Holder
	// Leftover are the generations that exist besides the current one:
	// what a killed restore or offline upgrade left, which the next
	// writable Open removes.
	Leftover []int64
	// Limits are the txn limits the store obeys.
	Limits Limits
}

// Status reads the store's generation, its lock's holder, the leftover
// generations, and the cluster's members, sizes, quota and alarms. Every
// member is asked at once, each within a second, so a dead or paused
// member delays it by a second at most.
func (s *Store) Status() (Status, error) {
	var ms []Member
	done := make(chan struct{})
	go func() {
		defer close(done)
		ms = s.probe(s.ctx, probeTimeout)
	}()
	t, err := s.pin()
	if err != nil {
		<-done
		return Status{}, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	tables, err := t.Tables()
	if err != nil {
		<-done
		return Status{}, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	st := Status{Generation: t.gen, Revision: t.rev, Tables: len(tables), Limits: s.limits}
	if st.Holder, err = s.Holder(); err != nil {
		<-done
		return st, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	gens, err := s.generations()
	if err != nil {
		<-done
		return st, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	for _, g := range gens {
		if g != t.gen {
			st.Leftover = append(st.Leftover, g)
		}
	}
	var alarms *clientv3.AlarmResponse
	err = s.read(func(ctx context.Context) (err error) {
		alarms, err = s.cli.AlarmList(ctx)
		return err
	})
	<-done
	st.Endpoints = len(ms)
	for _, m := range ms {
		if m.Err != nil {
			st.Down = append(st.Down, m)
		}
	}
	st.Members, st.DBSize, st.DBSizeQuota, _ = space(ms)
	if err != nil {
		return st, fmt.Errorf("reading the alarms of %s: %w", s.name, err)
	}
	for _, a := range alarms.Alarms {
		st.Alarms = append(st.Alarms, fmt.Sprintf("member %x: %s", a.MemberID, a.Alarm))
	}
	slices.Sort(st.Alarms)
	return st, nil
}

// GenerationKeys returns the number of keys of the current generation
// (records and table markers) and the sum of their lengths, as etcd holds
// them: what a restore's removal of the generation deletes, one tombstone
// per key. It reads the keys only, in one stream.
func (s *Store) GenerationKeys() (keys, keyBytes int64, err error) {
	t, err := s.pin()
	if err == nil {
		p := s.lay.gen(t.gen)
		err = s.streamKeys(s.ctx, p, prefixEnd(p), func(k []byte) error {
			keys++
			keyBytes += int64(len(k))
			return nil
		})
	}
	if err != nil {
		return 0, 0, fmt.Errorf("counting the keys of %s: %w", s.name, err)
	}
	return keys, keyBytes, nil
}
