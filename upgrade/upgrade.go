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
//     introduced_in > data_version; run in ascending num;
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
// crash resumes from there.
//
// The metadata table [store.MetaTable] holds "product", "data_version",
// "last_upgrade_hook" and one JSON [Applied] record per hook under
// "applied/<num>"; [ReadMetadata] reads them as a [Metadata], which backups
// carry in their manifest and [PlanFor] plans from.
package upgrade

import (
	"context"
	"fmt"
	"io"
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
	// Now returns the time recorded for an applied hook; time.Now when
	// nil.
	Now func() time.Time
	// Log receives a line when a hook starts, checkpoints and is applied;
	// nil is quiet.
	Log io.Writer
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
	return fmt.Sprintf("hook %d (%s) failed, its transaction was rolled back: %v", e.Num, e.Name, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// Run upgrades st to reg's release. A *Refusal means nothing was written; a
// *HookError or a context error stops the run after the hooks already
// applied, which are committed (Result lists them).
func Run(ctx context.Context, st store.Store, reg *hook.Registry, opts Options) (Result, error) {
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
	mode := Offline
	if opts.Online {
		mode = Online
	}
	from := meta.DataVersion
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

// runHook runs one hook in its transaction and commits it with the
// metadata update done by record.
func runHook(ctx context.Context, st store.Store, p Pending, info hook.Info, opts Options, record func(store.Tx) error) error {
	tx, err := st.Begin(true)
	if err != nil {
		return fmt.Errorf("hook %d (%s): %w", p.Num, p.Name, err)
	}
	h := &hookTx{st: st, cur: tx, info: info, name: p.Name, log: opts.Log}
	if opts.Online {
		cfg := opts.Config
		if cfg == nil {
			cfg = DirConfig("")
		}
		h.config = readOnlyConfig{Config: cfg, num: p.Num, name: p.Name}
	} else {
		h.config = store.ConfigView(storeSource{h})
	}
	defer func() {
		if h.cur != nil {
			h.cur.Rollback()
		}
	}()
	if err := call(ctx, p.fn, h); err != nil {
		return &HookError{Num: p.Num, Name: p.Name, Err: err}
	}
	if h.cur == nil {
		return &HookError{Num: p.Num, Name: p.Name, Err: store.ErrTxClosed}
	}
	if err := record(h.cur); err != nil {
		return fmt.Errorf("hook %d (%s): recording it as applied: %w", p.Num, p.Name, err)
	}
	if err := h.cur.Commit(); err != nil {
		return fmt.Errorf("hook %d (%s): %w", p.Num, p.Name, err)
	}
	h.cur = nil
	return nil
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
