package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store"
)

// StartOptions configure [Start].
type StartOptions struct {
	// OfflineCommand is the command an operator runs for the offline
	// upgrade of this store, such as "acmectl migrate upgrade --offline
	// --store /var/lib/acme/acme.db"; Start names it when it refuses to
	// start.
	OfflineCommand string
	// Config is the configuration the online hooks read (DirConfig of the
	// product's configuration directory); nil gives an empty view.
	Config hook.Config
	// AllowDigestMismatch proceeds over applied hooks whose digest
	// changed (see [Options]).
	AllowDigestMismatch bool
	// Log receives a line when a hook starts and is applied; nil is
	// quiet.
	Log io.Writer
	// Now returns the time recorded for an applied hook; time.Now when
	// nil.
	Now func() time.Time
}

// Start is the upgrade a product runs at start-up on the store it holds
// open (see bolt.FromDB), before it serves:
//   - a store without metadata and without data is a fresh install: it is
//     initialized (see [Init]), also when the product created its tables
//     (empty, at any depth, without sequences) before calling Start;
//   - a store without metadata that holds data (a record or a sequence in
//     any table: data written before the product adopted hookreg) is
//     refused: the product or an operator adopts it with a baseline (see
//     [Baseline], which a product may call itself for a store it knows
//     the release of);
//   - the pending hooks are applied online, each in its transaction, when
//     every one allows online;
//   - when a pending hook must run offline, nothing is written and Start
//     returns a *Refusal (with Offline set) that names
//     opts.OfflineCommand: the product must not start on data it cannot
//     read, and the operator runs the offline upgrade with it stopped.
//
// Every other refusal of [Run] (another product's data, data newer than
// the release, a downgrade, a changed applied hook) is a *Refusal too, and
// a failed hook a *HookError. A product refuses to start on any error.
func Start(ctx context.Context, st store.Store, reg *hook.Registry, opts StartOptions) (Result, error) {
	meta, err := ReadStoreMetadata(st)
	if errors.Is(err, ErrNotInitialized) {
		return startFresh(st, reg)
	}
	if err != nil {
		return Result{}, err
	}
	p, err := PlanFor(reg, meta)
	if err != nil {
		return Result{From: meta.DataVersion, To: meta.DataVersion}, err
	}
	if err := p.Check(true, opts.AllowDigestMismatch); err != nil {
		var r *Refusal
		if errors.As(err, &r) && r.Offline {
			cmd := opts.OfflineCommand
			if cmd == "" {
				cmd = "the offline upgrade"
			}
			err = &Refusal{Reason: fmt.Sprintf("%s: stop the product and run %q", r.Reason, cmd), Offline: true}
		}
		return Result{From: meta.DataVersion, To: meta.DataVersion}, err
	}
	return Run(ctx, st, reg, Options{
		Online:              true,
		AllowDigestMismatch: opts.AllowDigestMismatch,
		Config:              opts.Config,
		Now:                 opts.Now,
		Log:                 opts.Log,
	})
}

// startFresh initializes a store without metadata unless it holds data:
// tables the product created before migrating, empty (no record, no
// sequence, at any depth), are a fresh install's.
func startFresh(st store.Store, reg *hook.Registry) (Result, error) {
	held, err := HeldDataIn(st)
	if err != nil {
		return Result{}, err
	}
	if held != nil {
		return Result{}, refusef("the store holds data without hookreg metadata (table %s is not empty): data written before the product adopted hookreg; record the release that wrote it as a baseline (upgrade.Baseline, or the migrator's \"init --data-version V\") before starting", hook.FormatPath(held))
	}
	if err := Init(st, reg); err != nil {
		return Result{}, err
	}
	return Result{From: reg.Release, To: reg.Release}, nil
}
