package etcd

import (
	"fmt"
	"slices"
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
	// Alarms are the cluster's active alarms (such as NOSPACE), one
	// "member <id>: <alarm>" each.
	Alarms []string
	// Limits are the txn limits the store obeys.
	Limits Limits
}

// Status reads the store's generation and the cluster's sizes, quota and
// alarms.
func (s *Store) Status() (Status, error) {
	t, err := s.pin()
	if err != nil {
		return Status{}, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	tables, err := t.Tables()
	if err != nil {
		return Status{}, fmt.Errorf("reading the status of %s: %w", s.name, err)
	}
	st := Status{Generation: t.gen, Revision: t.rev, Tables: len(tables), Limits: s.limits}
	eps := s.cli.Endpoints()
	st.Endpoints = len(eps)
	for _, ep := range eps {
		ctx, cancel := s.reqCtx()
		r, err := s.cli.Status(ctx, ep)
		cancel()
		if err != nil {
			continue
		}
		st.Members++
		st.DBSize = max(st.DBSize, r.DbSize)
		if st.DBSizeQuota == 0 || r.DbSizeQuota < st.DBSizeQuota {
			st.DBSizeQuota = r.DbSizeQuota
		}
	}
	if st.Members == 0 {
		return st, fmt.Errorf("reading the status of %s: no member answered", s.name)
	}
	ctx, cancel := s.reqCtx()
	defer cancel()
	alarms, err := s.cli.AlarmList(ctx)
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
		err = s.streamKeys(p, prefixEnd(p), func(k []byte) error {
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
