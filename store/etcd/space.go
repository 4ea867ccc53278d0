package etcd

import "fmt"

// Space returns the largest backend size of the members that answered and
// their smallest quota (--quota-backend-bytes), in bytes: the figures of
// [Store.Status] without the rest, for a writer that checks its growth
// against the quota as it goes (an online upgrade). Every member is asked
// at once, each within a second; it fails when none answers.
func (s *Store) Space() (size, quota int64, err error) {
	answered, size, quota, last := space(s.probe(s.ctx, probeTimeout))
	if answered == 0 {
		return 0, 0, fmt.Errorf("reading the database size of %s: no member answered: %w", s.name, last)
	}
	return size, quota, nil
}

// space sums up the members' answers to a probe: how many answered, their
// largest backend size and their smallest quota, and the error of the last
// one that did not answer.
func space(ms []Member) (answered int, size, quota int64, last error) {
	for _, m := range ms {
		if m.Err != nil {
			last = m.Err
			continue
		}
		answered++
		size = max(size, m.DBSize)
		if quota == 0 || m.DBSizeQuota < quota {
			quota = m.DBSizeQuota
		}
	}
	return answered, size, quota, last
}
