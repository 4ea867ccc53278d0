// Package upgrade is the hookreg upgrade engine: it initializes a store's
// upgrade metadata, plans an upgrade from that metadata alone, and runs the
// pending hooks of a registry on a [store.Store], each in its own
// transaction together with its metadata update.
//
//	st, err := bolt.Open("broker.db", bolt.Options{})
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	res, err := upgrade.Run(ctx, st, generated.Registry, upgrade.Options{Online: true})
//	var refusal *upgrade.Refusal
//	if errors.As(err, &refusal) {
//		// nothing was written
//	}
//
// Semantics:
//   - pending hooks: num > last_upgrade_hook; without last_upgrade_hook,
//     introduced_in > data_version; run in ascending num. Maintenance
//     hooks (hooks of a patch release of an older line, numbered in their
//     line's range: see [hook.MaintenanceBase]) are known by identity
//     instead: pending unless applied or covered by the release that
//     installed the data ([Metadata.Covered]), run where their
//     introduced_in places them, and never move last_upgrade_hook (see
//     [PlanFor] and [RunOrder]);
//   - every hook commits with its [Applied] record, last_upgrade_hook and
//     the data version, which advances to the hook's introduced_in once no
//     pending hook of that version is left, and to the release after the
//     last hook;
//   - refused before anything is written: another product's data, data
//     newer than the release, a downgrade (last_upgrade_hook above every
//     known hook), data older than the registry's MinDataVersion, an
//     applied hook whose digest changed (unless AllowDigestMismatch, then
//     recorded), and online runs with a pending hook that is not
//     allow_online;
//   - a hook's error or panic rolls its transaction back and stops the run
//     with an error naming the hook; a cancelled context stops the run
//     between hooks (and inside [hook.EachBatch]) the same way.
//
// A hook that calls [hook.Tx.Checkpoint] (usually through hook.EachBatch)
// commits its work so far with its progress, kept in the metadata table
// under "progress/<num>/<key>" until the hook completes; a re-run after a
// crash resumes from there. On a store whose transactions chain
// ([store.Chainer]: etcd), a checkpoint commits and begins the hook's next
// transaction in one request: the next transaction reads at the
// checkpoint's revision, and its commit checks what any commit checks.
//
// On a store whose writers run concurrently (etcd: the product keeps writing
// during an online upgrade), a hook's commit (its last one, or a
// checkpoint's) that fails with [store.ErrConflict] wrote nothing; the
// engine runs the hook again from its last checkpoint in a new transaction,
// at most 8 runs with a growing pause (20 ms doubling to 1 s, jittered),
// then stops with a [*ConflictError] naming the hook. Every run reads
// last_upgrade_hook in its own transaction, which such a store checks at
// commit, so no run applies a hook twice. On a store that bounds one
// transaction ([store.Roomer]: etcd's --max-txn-ops and
// --max-request-bytes), the hook's [hook.Tx] is a [hook.Roomer] too, so
// [hook.EachBatch] checkpoints before a transaction is full; a transaction
// that cannot fit is refused before anything of it is written, as a
// [*LimitError] naming the hook and the ways out (raise the cluster's
// limits, or upgrade offline on a backup).
//
// [Init] records a fresh install; [Baseline] adopts data written before the
// product adopted hookreg (its version, no last_upgrade_hook, so the later
// hooks are pending). [Start] is the upgrade a product runs at start-up on
// the store it holds open (see bolt.FromDB): the pending online hooks run,
// and a pending offline hook refuses the start, naming the operator's
// command. [RunHook] runs one hook as Run does, for tests (package
// hooktest).
//
// The metadata table [store.MetaTable] holds "product", "data_version",
// "last_upgrade_hook" and one JSON [Applied] record per hook under
// "applied/<num>"; [ReadMetadata] reads them as a [Metadata], which backups
// carry in their manifest and [PlanFor] plans from.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// Options configure Run.
type Options struct {
	// Online runs on a live store: hooks must allow online and see the
	// configuration read-only. Otherwise the run is offline and hooks
	// read and write the configuration files held in the store's
	// [store.ConfigTable] (see [store.ConfigView]).
	Online bool
	// AllowDigestMismatch proceeds over applied hooks whose digest
	// changed; the hooks of the run record it.
	AllowDigestMismatch bool
	// Config is the read-only configuration of an online run
	// (DirConfig); nil gives an empty view.
	Config hook.Config
	// ConfigStoreBase, in an offline run, is the file name of a store
	// that lies directly in the configuration directory the result will
	// be restored into (the one-command offline upgrade of such a store):
	// a hook's write of a configuration file whose first path element is
	// one of that store's own names (see the migrator's docs on the
	// layout) fails the hook, rather than the restore at the end of the
	// run.
	ConfigStoreBase string
	// Now returns the time recorded for an applied hook; time.Now when
	// nil.
	Now func() time.Time
	// Log receives a line when a hook starts, checkpoints and is applied;
	// nil is quiet.
	Log io.Writer
	// Warn receives warnings; nil is quiet. On a store whose database
	// has a quota (etcd), a run warns once, with the figures, when the
	// database has passed half of it: checked when the run starts, every
	// 64 commits (checkpoints included) and when it ends.
	Warn io.Writer

	space *spaceWatch // of Warn, set by Run and RunHook
}

// Result is what a run did.
type Result struct {
	// From and To are the data versions before and after the run.
	From, To string
	// Applied are the records of the hooks applied by this run.
	Applied []Applied
}

// HookError is a hook that failed: it returned an error or panicked.
type HookError struct {
	Num  int
	Name string
	Err  error
}

func (e *HookError) Error() string {
	switch {
	case errors.Is(e.Err, store.ErrUnavailable):
		// Not the hook's fault: say what failed and what to do.
		return fmt.Sprintf("hook %d (%s) stopped because the store's cluster failed, not the hook: %v; what the hook committed up to its last checkpoint stays, and running the command again resumes from there", e.Num, e.Name, e.Err)
	case errors.Is(e.Err, store.ErrLockLost):
		return fmt.Sprintf("hook %d (%s) stopped because this migrator lost its lock on the store (it was paused or cut off longer than the lock's lease), not because of the hook: %v; what the hook committed up to its last checkpoint stays; another migrator may hold the store now: run the command again once none does", e.Num, e.Name, e.Err)
	}
	return fmt.Sprintf("hook %d (%s) failed, its transaction was rolled back: %v", e.Num, e.Name, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// Run upgrades st to reg's release. A *Refusal means nothing was written; a
// *HookError, a *LimitError, a *ConflictError or a context error stops the
// run after the hooks already applied, which are committed (Result lists
// them), and the failed hook's checkpoints.
func Run(ctx context.Context, st store.Store, reg *hook.Registry, opts Options) (_ Result, err error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	meta, err := ReadStoreMetadata(st)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: meta.DataVersion, To: meta.DataVersion}
	plan, err := PlanFor(reg, meta)
	if err != nil {
		return res, err
	}
	if err := plan.Check(opts.Online, opts.AllowDigestMismatch); err != nil {
		return res, err
	}
	if err := recordAmended(st, plan); err != nil {
		return res, err
	}
	mode := Offline
	if opts.Online {
		mode = Online
	}
	from := meta.DataVersion
	if len(plan.Pending) > 0 {
		opts.space = newSpaceWatch(st, opts)
		opts.space.check()
		defer func() {
			// A cluster that did not answer the run's commits would
			// not answer the check either: asking again would only
			// add its second to a failure already timed out.
			if !errors.Is(err, store.ErrUnavailable) {
				opts.space.check()
			}
		}()
	}
	for _, p := range plan.Pending {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("upgrade interrupted before hook %d: %w", p.Num, err)
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "running hook %d (%s, %s)\n", p.Num, p.Name, p.IntroducedIn)
		}
		start := time.Now()
		a := Applied{
			Num:                 p.Num,
			Name:                p.Name,
			Digest:              p.digest,
			Release:             reg.Release,
			Mode:                mode,
			AllowDigestMismatch: len(plan.DigestMismatches) > 0,
		}
		info := hook.Info{Num: p.Num, From: from, To: p.IntroducedIn, Online: opts.Online}
		if err := runHook(ctx, st, p, info, opts, func(tx store.Tx) error {
			a.AppliedAt = appliedAt(now())
			return recordApplied(tx, a, p.DataVersionAfter)
		}); err != nil {
			return res, err
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "applied hook %d (%s) in %s\n", p.Num, p.Name, time.Since(start).Round(time.Millisecond))
		}
		res.Applied = append(res.Applied, a)
		from, res.To = p.DataVersionAfter, p.DataVersionAfter
	}
	if len(plan.Pending) == 0 && plan.TargetVersion != meta.DataVersion {
		if err := setDataVersion(st, plan.TargetVersion); err != nil {
			return res, err
		}
		res.To = plan.TargetVersion
	}
	return res, nil
}

// ReadStoreMetadata reads the metadata of st in a read-only transaction.
func ReadStoreMetadata(st store.Store) (Metadata, error) {
	tx, err := st.Begin(false)
	if err != nil {
		return Metadata{}, err
	}
	defer tx.Rollback()
	return ReadMetadata(tx)
}

func setDataVersion(st store.Store, v string) error {
	tx, err := st.Begin(true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	meta, err := tx.CreateTable(store.MetaTable)
	if err != nil {
		return err
	}
	if err := meta.Put([]byte(keyDataVersion), []byte(v)); err != nil {
		return fmt.Errorf("recording data version %s: %w", v, err)
	}
	return tx.Commit()
}

// Bounds of the re-runs of a hook whose commit conflicts with a concurrent
// write: at most conflictAttempts runs in a row that conflict without
// committing a checkpoint (a run that checkpointed made progress, which
// the next resumes from, so a long online hook beside a busy product goes
// on as long as its batches get through), the n-th re-run of such a
// streak after a pause of about conflictBackoff·2ⁿ⁻¹ (at most
// maxConflictBackoff).
const (
	conflictAttempts   = 8
	conflictBackoff    = 20 * time.Millisecond
	maxConflictBackoff = time.Second
)

// ConflictError is a hook given up after its commits kept conflicting with
// concurrent writes of the product (see [store.ErrConflict]): nothing of
// its last transaction was written; its checkpoints were, and the next run
// resumes after them.
type ConflictError struct {
	Num       int
	Name      string
	Conflicts int
	Err       error // the last conflict
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("hook %d (%s): gave up after %d conflicts in a row, without a checkpoint between them, with concurrent writes to the keys it writes (nothing of its last transaction was written; the next run resumes from its last checkpoint): %v", e.Num, e.Name, e.Conflicts, e.Err)
}

func (e *ConflictError) Unwrap() error { return e.Err }

// LimitError is a hook whose transaction does not fit the store's bounds
// (an etcd cluster's --max-txn-ops and --max-request-bytes; see
// [store.Roomer]): the store refused it before anything of it was written.
// Err, from the store, tells the transaction's writes and size.
type LimitError struct {
	Num  int
	Name string
	// Checkpoints is how many checkpoints of the hook committed before;
	// the next run resumes after them.
	Checkpoints int
	Err         error
}

func (e *LimitError) Error() string {
	written := "nothing of it was written"
	if e.Checkpoints > 0 {
		written = fmt.Sprintf("nothing of its last transaction was written, its %d checkpoints were", e.Checkpoints)
	}
	return fmt.Sprintf("hook %d (%s) does not fit one transaction of the store (%s): %v; "+
		"either raise --max-txn-ops/--max-request-bytes on the product's cluster (and the store's limits to match), "+
		"or run the upgrade offline (migrator upgrade --offline --store S: it upgrades a backup of the store, where no such limit applies, and restores it)",
		e.Num, e.Name, written, e.Err)
}

func (e *LimitError) Unwrap() error { return e.Err }

// runHook runs one hook in its transaction and commits it with the
// metadata update done by record. A commit that conflicts with a
// concurrent write (store.ErrConflict) runs the hook again, from its last
// checkpoint, in a new transaction.
func runHook(ctx context.Context, st store.Store, p Pending, info hook.Info, opts Options, record func(store.Tx) error) error {
	streak := 0 // runs in a row that conflicted without a checkpoint
	for attempt := 1; ; attempt++ {
		err := runHookOnce(ctx, st, p, info, opts, record, attempt)
		if errors.Is(err, errAlreadyApplied) {
			return nil
		}
		var c *conflict
		if !errors.As(err, &c) {
			return err
		}
		if c.progress {
			streak = 0
		}
		streak++
		if streak == conflictAttempts {
			return &ConflictError{Num: p.Num, Name: p.Name, Conflicts: streak, Err: c.err}
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "hook %d (%s): a concurrent write conflicted with its transaction, running it again from its last checkpoint (%d of %d in a row)\n", p.Num, p.Name, streak+1, conflictAttempts)
		}
		pause := min(conflictBackoff<<(streak-1), maxConflictBackoff)
		pause = pause/2 + rand.N(pause/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("hook %d (%s): interrupted while waiting to run it again after a conflict: %w", p.Num, p.Name, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// conflict is a run of a hook that ended on store.ErrConflict; progress
// reports that it committed a checkpoint before.
type conflict struct {
	err      error
	progress bool
}

func (c *conflict) Error() string { return c.err.Error() }

// errAlreadyApplied: a re-run found the hook applied by the run before
// it, whose commit's outcome was reported as failed.
var errAlreadyApplied = errors.New("hook already applied")

// runHookOnce is one run of runHook. It reads last_upgrade_hook and the
// hook's applied record in the hook's transaction, so that a store which
// checks the metadata a transaction read (etcd) refuses the commit if
// another one applied a hook meanwhile; a re-run that finds the hook's
// applied record (the run before committed, though its outcome was
// reported as failed) applies nothing. The record, not last_upgrade_hook,
// tells: a maintenance hook does not move last_upgrade_hook.
func runHookOnce(ctx context.Context, st store.Store, p Pending, info hook.Info, opts Options, record func(store.Tx) error, attempt int) error {
	tx, err := st.Begin(true)
	if err != nil {
		return fmt.Errorf("hook %d (%s): %w", p.Num, p.Name, err)
	}
	h := &hookTx{st: st, cur: tx, info: info, name: p.Name, log: opts.Log, space: opts.space}
	defer func() {
		if h.cur != nil {
			h.cur.Rollback()
		}
	}()
	done, err := readApplied(tx, p.Num)
	if err != nil {
		return fmt.Errorf("hook %d (%s): reading its metadata: %w", p.Num, p.Name, err)
	}
	if done && attempt > 1 {
		return errAlreadyApplied
	}
	if opts.Online {
		cfg := opts.Config
		if cfg == nil {
			cfg = DirConfig("")
		}
		h.config = readOnlyConfig{Config: cfg, num: p.Num, name: p.Name}
	} else {
		h.config = store.ConfigView(storeSource{h})
		if opts.ConfigStoreBase != "" {
			h.config = storeNamesConfig{Config: h.config, base: opts.ConfigStoreBase}
		}
	}
	fail := func(err error, wrap func(error) error) error {
		switch {
		case h.conflict || errors.Is(err, store.ErrConflict):
			return &conflict{err: wrap(err), progress: h.committed > 0}
		case errors.Is(err, store.ErrTooLarge):
			return &LimitError{Num: p.Num, Name: p.Name, Checkpoints: h.gen, Err: err}
		}
		return wrap(err)
	}
	// The hook's own context ends when it returns, so that a goroutine
	// it left behind that watches it stops; hookReturned then waits for
	// the calls such goroutines are in.
	hctx, cancel := context.WithCancel(ctx)
	err = call(hctx, p.fn, hookView(h))
	cancel()
	h.hookReturned(opts.Warn)
	if err != nil {
		return fail(err, func(err error) error { return &HookError{Num: p.Num, Name: p.Name, Err: err} })
	}
	if h.cur == nil {
		return &HookError{Num: p.Num, Name: p.Name, Err: store.ErrTxClosed}
	}
	if err := record(h.cur); err != nil {
		return fail(err, func(err error) error {
			return fmt.Errorf("hook %d (%s): recording it as applied: %w", p.Num, p.Name, err)
		})
	}
	err = h.cur.Commit()
	h.cur = nil
	if err != nil {
		return fail(err, func(err error) error { return fmt.Errorf("hook %d (%s): %w", p.Num, p.Name, err) })
	}
	opts.space.committed()
	return nil
}

// readApplied reads last_upgrade_hook and hook num's applied record in tx
// and reports whether the record exists.
func readApplied(tx store.Tx, num int) (bool, error) {
	meta, err := tx.Table(store.MetaTable)
	if errors.Is(err, hook.ErrNoTable) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := meta.Get([]byte(keyLastUpgradeHook)); err != nil && !errors.Is(err, hook.ErrNotFound) {
		return false, err
	}
	_, err = meta.Get(appliedKey(num))
	if errors.Is(err, hook.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn hook.Func, tx hook.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx, tx)
}

// RunHook runs the hook h alone on st as [Run] runs each pending hook: in
// one transaction (a series of them when it checkpoints) that commits
// together with its metadata update, with the configuration files of the
// offline view (the store's configuration table, writable) or, with
// opts.Online, of opts.Config read-only; a panic is an error; on failure a
// *HookError (or, on etcd, a *LimitError or *ConflictError) and the
// transaction rolled back; a conflicting commit re-runs the hook as in Run. from is the data version the
// hook sees as [hook.Info.From]. It plans nothing and refuses nothing:
// it is for testing one hook (see package hooktest).
func RunHook(ctx context.Context, st store.Store, h hook.Hook, from string, opts Options) error {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	mode := Offline
	if opts.Online {
		mode = Online
	}
	p := Pending{Num: h.Num, IntroducedIn: h.IntroducedIn, AllowOnline: h.AllowOnline, Name: h.Name, DataVersionAfter: h.IntroducedIn, fn: h.Func, digest: h.Digest}
	info := hook.Info{Num: h.Num, From: from, To: h.IntroducedIn, Online: opts.Online}
	opts.space = newSpaceWatch(st, opts)
	opts.space.check()
	defer opts.space.check()
	return runHook(ctx, st, p, info, opts, func(tx store.Tx) error {
		a := Applied{Num: h.Num, Name: h.Name, Digest: h.Digest, Release: h.IntroducedIn, AppliedAt: appliedAt(now()), Mode: mode}
		return recordApplied(tx, a, h.IntroducedIn)
	})
}
