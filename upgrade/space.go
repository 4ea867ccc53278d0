package upgrade

import (
	"fmt"
	"io"

	"github.com/hookreg/hookreg/store"
)

// spaceStore is a store whose database is bounded by a quota (etcd's
// --quota-backend-bytes, see etcd.Store.Space): its size and quota in
// bytes.
type spaceStore interface {
	Space() (size, quota int64, err error)
}

// spaceCheckEvery is the number of commits (checkpoints and hooks
// applied) between two checks of the database's size in a run.
const spaceCheckEvery = 64

// spaceWatch warns once per run, on Options.Warn, when the database of a
// store with a quota has passed half of it: checked when the run starts,
// every spaceCheckEvery commits, and when it ends. A nil *spaceWatch
// checks nothing.
type spaceWatch struct {
	st      spaceStore
	name    string
	w       io.Writer
	commits int
	warned  bool
}

// newSpaceWatch returns the watch of a run on st, nil when st has no quota
// or opts no Warn.
func newSpaceWatch(st store.Store, opts Options) *spaceWatch {
	ss, ok := st.(spaceStore)
	if !ok || opts.Warn == nil {
		return nil
	}
	name := "the store"
	if n, ok := st.(interface{ Name() string }); ok {
		name = n.Name()
	}
	return &spaceWatch{st: ss, name: name, w: opts.Warn}
}

// check reads the database's size and warns if it is past half the
// quota. A failed read is no warning: the run's own commits report a
// cluster that does not answer.
func (s *spaceWatch) check() {
	if s == nil || s.warned {
		return
	}
	size, quota, err := s.st.Space()
	if err != nil || quota <= 0 || size <= quota/2 {
		return
	}
	s.warned = true
	fmt.Fprintf(s.w, "warning: during this online upgrade the database of %s uses %d of its %d-byte quota (--quota-backend-bytes, %.0f%%): past half of it; compact away the old revisions and defragment each member (docs/cluster.md, Quota)\n",
		s.name, size, quota, 100*float64(size)/float64(quota))
}

// committed counts a commit, and checks every spaceCheckEvery.
func (s *spaceWatch) committed() {
	if s == nil {
		return
	}
	if s.commits++; s.commits%spaceCheckEvery == 0 {
		s.check()
	}
}
