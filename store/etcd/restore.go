package etcd

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/failpoint"
	"github.com/hookreg/hookreg/store"
)

// A Restore replaces every table of the store with new content: it writes a
// new generation beside the current one and makes it current only once it
// is complete and verified (see "Restore" in the package documentation).
//
//	r, err := st.BeginRestore()
//	if err != nil {
//		return err
//	}
//	defer r.Abort()
//	if err := r.Table("users"); err != nil {
//		return err
//	}
//	if err := r.Put([]byte("alice"), []byte("1")); err != nil {
//		return err
//	}
//	return r.Finish()
//
// A Restore holds the store's writer slot: no transaction of the store
// begins until Finish or Abort. Its methods are not safe for concurrent use.
type Restore struct {
	s       *Store
	gen     int64                // the generation being written
	from    int64                // the current generation when the restore began
	fromRev int64                // the mod revision of P/current then
	sums    map[string]*restored // by encodePath
	table   *restored            // the table Put writes into
	prefix  string               // its records' prefix
	batch   *request
	sender  *sender
	ended   bool
	// failed is the error Finish returned, if any.
	failed error
	// unchanged, when not nil, is the watch of the generation the
	// restore replaces (see IfUnchanged).
	unchanged *Unchanged
}

// A RestoreOption configures [Store.BeginRestore].
type RestoreOption func(*Restore)

// IfUnchanged makes the restore refuse to make its generation current
// when the current generation changed after u's revision: a write or a
// delete the watch u saw before the switch, or a key written after the
// revision, which the switch's txn itself compares (so no write can slip
// in between). Then [Restore.Finish] fails with a [*ChangedError] and the
// current generation stays current. It is for a restore of data read at
// that revision with the product stopped (an offline upgrade): a product
// write after it would be lost. The restore must begin on u's generation.
func IfUnchanged(u *Unchanged) RestoreOption {
	return func(r *Restore) { r.unchanged = u }
}

// TableSum sums up the records of one table: their number, the bytes of
// their keys and values, and a hash of them that does not depend on their
// order (the sum of the SHA-256 of each record, four 64-bit lanes added
// separately); and the table's sequence.
type TableSum struct {
	Records, Bytes int64
	Hash           [4]uint64
	Sequence       uint64
}

// restored is a table a restore wrote.
type restored struct {
	path []string
	sum  TableSum
}

func (t *TableSum) add(key, value []byte) {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
	h.Write(key)
	h.Write(value)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	for i := range t.Hash {
		t.Hash[i] += binary.BigEndian.Uint64(d[8*i:])
	}
	t.Records++
	t.Bytes += int64(len(key) + len(value))
}

// restoreSenders is the number of batches a restore has in flight: the
// batches write disjoint keys of a generation nobody reads yet, so their
// order does not matter.
const restoreSenders = 4

// BeginRestore starts a restore of the writable store: it removes the
// generations left by restores that did not finish (see
// [Store.RemoveStale]) and picks the new generation, one more than any that
// exists.
func (s *Store) BeginRestore(opts ...RestoreOption) (*Restore, error) {
	if s.sess == nil {
		return nil, fmt.Errorf("restoring %s: %w", s.name, store.ErrReadOnly)
	}
	select {
	case s.writer <- struct{}{}:
	case <-s.lost:
		return nil, fmt.Errorf("restoring %s: %w", s.name, ErrLockLost)
	case <-s.ctx.Done():
		return nil, fmt.Errorf("restoring %s: store closed", s.name)
	}
	r, err := s.beginRestore(opts)
	if err != nil {
		<-s.writer
		return nil, fmt.Errorf("restoring %s: %w", s.name, err)
	}
	return r, nil
}

func (s *Store) beginRestore(opts []RestoreOption) (*Restore, error) {
	if err := s.removeStale(); err != nil {
		return nil, err
	}
	var resp *clientv3.GetResponse
	err := s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.current())
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("key %s is missing", s.lay.current())
	}
	from, err := parseGeneration(resp.Kvs[0].Value)
	if err != nil {
		return nil, err
	}
	gens, err := s.generations()
	if err != nil {
		return nil, err
	}
	next := from + 1
	for _, g := range gens {
		next = max(next, g+1)
	}
	r := &Restore{s: s, gen: next, from: from, fromRev: resp.Kvs[0].ModRevision, sums: map[string]*restored{}}
	for _, o := range opts {
		o(r)
	}
	if u := r.unchanged; u != nil && (u.gen != from || r.fromRev > u.rev) {
		return nil, fmt.Errorf("generation %d is current since revision %d, not generation %d since revision %d: %w", from, r.fromRev, u.gen, u.rev, ErrGenerationChanged)
	}
	// The generation's marker goes first, alone, so that every key of
	// the generation exists only while its marker does: removeStale
	// finds every generation from the markers.
	first := r.newBatch()
	first.ops = append(first.ops, reqOp{key: s.lay.genMarker(next)})
	if err := r.send(first); err != nil {
		return nil, err
	}
	r.batch = r.newBatch()
	r.sender = newSender(r)
	return r, nil
}

// newBatch returns an empty fenced txn: the lock held and P/current still
// naming the generation the restore began on.
func (r *Restore) newBatch() *request {
	p := &request{
		cmps: []clientv3.Cmp{r.s.mu.IsOwner(), clientv3.Compare(clientv3.Value(r.s.lay.current()), "=", strconv.FormatInt(r.from, 10))},
	}
	p.size = r.s.baseSize(p.cmps)
	return p
}

// baseSize is the size of a restore batch's txn request with cmps and the
// Else read of P/current, without operations.
func (s *Store) baseSize(cmps []clientv3.Cmp) int {
	n := 0
	for _, c := range cmps {
		n += 1 + protowire.SizeBytes(proto.Size(c.GetCompare()))
	}
	return n + 1 + protowire.SizeBytes(1+protowire.SizeBytes(1+protowire.SizeBytes(len(s.lay.current()))))
}

// putSize is the bytes a put of a key and a value adds to a txn request.
func putSize(key, value int) int {
	n := 1 + protowire.SizeBytes(key)
	if value > 0 {
		n += 1 + protowire.SizeBytes(value)
	}
	n = 1 + protowire.SizeBytes(n) // RequestOp.request_put
	return 1 + protowire.SizeBytes(n)
}

// Table starts the top-level table name (reserved names included): it is
// TablePath([]string{name}, 0).
func (r *Restore) Table(name string) error {
	return r.TablePath([]string{name}, 0)
}

// TablePath starts the table at path (a top-level table's name, then the
// names of the tables nested in it down to this one) with the sequence
// seq: it creates it, empty, and makes it the table that Put writes into.
// Each table may be started once, and a nested table only after its
// parent, as an archive orders them.
func (r *Restore) TablePath(path []string, seq uint64) error {
	if err := r.usable(); err != nil {
		return err
	}
	if len(path) == 0 {
		return errors.New("restoring: a table with an empty path")
	}
	label := hook.FormatPath(path)
	if err := store.ValidatePath(path); err != nil {
		return fmt.Errorf("restoring table %s: %w", label, err)
	}
	enc := encodePath(path)
	if _, ok := r.sums[enc]; ok {
		return fmt.Errorf("restoring table %s: the table was restored already", label)
	}
	if len(path) > 1 {
		if _, ok := r.sums[encodePath(path[:len(path)-1])]; !ok {
			return fmt.Errorf("restoring table %s: its parent table was not restored first", label)
		}
	}
	r.table = &restored{path: slices.Clone(path), sum: TableSum{Sequence: seq}}
	r.sums[enc] = r.table
	r.prefix = r.s.lay.records(r.gen, path)
	marker := r.s.lay.marker(r.gen, path)
	return r.add(reqOp{key: marker, value: []byte(encodeSeq(seq))}, 0)
}

// ResumePath makes the table at path, started already, the one Put writes
// into again: in a format 3 archive a table's records go on after each
// table nested in it, as bbolt orders them.
func (r *Restore) ResumePath(path []string) error {
	if err := r.usable(); err != nil {
		return err
	}
	t, ok := r.sums[encodePath(path)]
	if !ok {
		return fmt.Errorf("restoring table %s: resumed before it was started", hook.FormatPath(path))
	}
	r.table = t
	r.prefix = r.s.lay.records(r.gen, path)
	return nil
}

// Put writes a record into the table started (or resumed) last. Key and value are kept
// until their batch is sent: the caller must not modify them.
func (r *Restore) Put(key, value []byte) error {
	if err := r.usable(); err != nil {
		return err
	}
	if r.table == nil {
		return errors.New("restoring: a record before any table")
	}
	if len(key) == 0 {
		return fmt.Errorf("restoring table %s: empty key", r.table.label())
	}
	if err := r.add(reqOp{key: r.prefix + string(key), value: value}, len(key)+len(value)); err != nil {
		return err
	}
	r.table.sum.add(key, value)
	return nil
}

// label names the table in errors, as tableState.label does.
func (t *restored) label() string {
	if len(t.path) == 1 {
		return strconv.Quote(t.path[0])
	}
	return hook.FormatPath(t.path)
}

func (r *Restore) usable() error {
	if r.ended {
		return fmt.Errorf("restoring %s: %w", r.s.name, store.ErrTxClosed)
	}
	return r.sender.failed()
}

// add appends op to the batch, sending the batch first when op would not
// fit.
func (r *Restore) add(op reqOp, bytes int) error {
	n := putSize(len(op.key), len(op.value))
	l := r.s.limits
	if len(r.batch.ops)+1 > l.MaxTxnOps || r.batch.size+n > l.requestBytes(r.s.opts.Username) {
		if len(r.batch.ops) == 0 {
			return r.tooLarge(op)
		}
		if err := r.sender.send(r.batch); err != nil {
			return err
		}
		r.batch = r.newBatch()
		if r.batch.size+n > l.requestBytes(r.s.opts.Username) {
			return r.tooLarge(op)
		}
	}
	r.batch.ops = append(r.batch.ops, op)
	r.batch.size += n
	r.batch.writes++
	r.batch.bytes += bytes
	return nil
}

func (r *Restore) tooLarge(op reqOp) error {
	key := []byte(op.key[len(r.prefix):])
	return r.s.recordTooLarge(r.table.label(), key, len(key)+len(op.value), r.batch.size+putSize(len(op.key), len(op.value)))
}

// recordTooLarge is the error about a record that no restore batch can
// carry: n bytes of key and value in a request of size bytes. It wraps
// ErrTooLarge.
func (s *Store) recordTooLarge(table string, key []byte, n, size int) error {
	l := s.limits
	return fmt.Errorf("table %s, key %q: %w: the record's %d bytes of key and value need a %d-byte request, and the cluster takes %d (--max-request-bytes %d, client send limit %d): raise --max-request-bytes on the cluster (and the store's limits to match), or keep the product's records smaller",
		table, truncate(key), ErrTooLarge, n, size, l.requestBytes(s.opts.Username), l.MaxRequestBytes, l.MaxCallSendBytes)
}

// send commits one batch, fenced on the lock and the old generation. A
// batch only puts, so sending it again after a lost answer is harmless.
func (r *Restore) send(p *request) error {
	if err := failpoint.Inject("etcd.restore.batch"); err != nil {
		return err
	}
	if err := r.commit(p); err != nil {
		return fmt.Errorf("writing generation %d: %w", r.gen, err)
	}
	return failpoint.Inject("etcd.restore.batch-sent")
}

// commit sends a batch. A batch only puts keys nobody else writes, so
// when the answer is lost it is sent again: applying it twice writes the
// same values.
func (r *Restore) commit(p *request) error {
	s := r.s
	ops := make([]clientv3.Op, len(p.ops))
	for i, o := range p.ops {
		ops[i] = o.client()
	}
	resp, lost, err := s.resend(func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).If(p.cmps...).Then(ops...).Else(clientv3.OpGet(s.lay.current())).Commit()
	})
	switch {
	case lost:
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, s.unavailable(err))
	case err != nil:
		return s.refusal(p, err)
	case resp.Succeeded:
		return nil
	}
	if cur := resp.Responses[0].GetResponseRange().Kvs; len(cur) == 0 || string(cur[0].Value) != strconv.FormatInt(r.from, 10) {
		return ErrGenerationChanged
	}
	return ErrLockLost
}

// resend sends a txn with send, again while its answer is lost (a
// member's death, an election), with backoff, until the request timeout
// passes; each attempt ends after attempt(). It returns the answer, or a
// refusal of the request (definite), or, with lost set, the last lost
// answer's error. Only a txn that may apply twice, or whose compares let
// one send apply at most, is sent this way.
func (s *Store) resend(send func(ctx context.Context) (*clientv3.TxnResponse, error)) (resp *clientv3.TxnResponse, lost bool, err error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	delay := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			var wait time.Duration
			wait, delay = backoff(delay)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if ctx.Err() != nil {
				return nil, true, err
			}
		}
		actx, acancel := context.WithTimeout(ctx, s.attempt())
		resp, err = send(actx)
		acancel()
		if err == nil || definite(err) {
			return resp, false, err
		}
		s.attemptFailed(ctx, err)
	}
}

// CheckRecord refuses, before anything is written, a record of table that
// no restore batch can hold at the store's limits. To check many records,
// use [Store.RecordChecker].
func (s *Store) CheckRecord(table string, key, value []byte) error {
	return s.RecordChecker()(table, key, value)
}

// RecordChecker returns a function that does what CheckRecord does, with
// the work that depends only on the store done once.
// It works on a read-only store too, assuming the longest lock key.
func (s *Store) RecordChecker() func(table string, key, value []byte) error {
	check := s.PathRecordChecker()
	var path [1]string
	return func(table string, key, value []byte) error {
		path[0] = table
		return check(path[:], key, value)
	}
}

// PathRecordChecker is RecordChecker for a record of the table at path,
// nested or not.
func (s *Store) PathRecordChecker() func(path []string, key, value []byte) error {
	const widestGen = 9223372036854775807
	lockKey := s.lay.lockPrefix() + "/" + strconv.FormatUint(math.MaxUint64, 16)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(lockKey), "=", math.MaxInt64),
		clientv3.Compare(clientv3.Value(s.lay.current()), "=", strconv.FormatInt(widestGen, 10)),
	}
	base := s.baseSize(cmps)
	limit := s.limits.requestBytes(s.opts.Username)
	var last []string
	prefix := 0
	return func(path []string, key, value []byte) error {
		if prefix == 0 || !slices.Equal(path, last) {
			last, prefix = append(last[:0], path...), len(s.lay.records(widestGen, path))
		}
		if size := base + putSize(prefix+len(key), len(value)); size > limit {
			label := strconv.Quote(path[0])
			if len(path) > 1 {
				label = hook.FormatPath(path)
			}
			return s.recordTooLarge(label, key, len(key)+len(value), size)
		}
		return nil
	}
}

// Sums returns what the restore wrote so far, per table, by the table's
// path as the archive encodes it ([archive.EncodePath]; a top-level table
// of a plain name by its name).
func (r *Restore) Sums() map[string]TableSum {
	out := make(map[string]TableSum, len(r.sums))
	for _, t := range r.sums {
		out[archive.EncodePath(t.path)] = t.sum
	}
	return out
}

// Prefix returns the store's key prefix, without a trailing slash.
func (s *Store) Prefix() string { return s.lay.root }

// ReadsAreRemote is true: every read is a request to the cluster (see
// [store.RemoteReader]).
func (s *Store) ReadsAreRemote() bool { return true }

// Generation returns the generation the restore writes.
func (r *Restore) Generation() int64 { return r.gen }

// Finish sends the last batch, verifies the new generation by reading it
// back, page by page, against what was written, makes it current in one
// txn and removes the old generation. It fails with nothing changed when
// the verification fails, the lock was lost or P/current changed since
// BeginRestore; once the new generation is current, an error removing the
// old one leaves it for the next writable Open.
func (r *Restore) Finish() error {
	if err := r.usable(); err != nil {
		return err
	}
	err := r.sender.send(r.batch)
	if cerr := r.sender.close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.verify()
	}
	if err == nil {
		err = failpoint.Inject("etcd.restore.verified")
	}
	if err == nil && r.unchanged != nil {
		err = r.unchanged.Check()
		if err == nil {
			err = failpoint.Inject("etcd.restore.unchanged")
		}
	}
	if err == nil {
		err = r.flip()
	}
	if err != nil {
		r.failed = err
		return fmt.Errorf("restoring %s: %w", r.s.name, err)
	}
	r.ended = true
	defer func() { <-r.s.writer }()
	if err := failpoint.Inject("etcd.restore.flipped"); err != nil {
		return err
	}
	if err := r.s.removeGeneration(r.s.ctx, r.from); err != nil {
		return fmt.Errorf("restoring %s: generation %d is current; removing the old generation %d: %w (the next writable open removes it)", r.s.name, r.gen, r.from, err)
	}
	return nil
}

// verify reads the new generation back at one revision and compares its
// tables and the sums of their records with what was written.
func (r *Restore) verify() error {
	s := r.s
	var resp *clientv3.GetResponse
	err := s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.genMarker(r.gen))
		return err
	})
	if err != nil {
		return fmt.Errorf("verifying generation %d: %w", r.gen, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("verifying generation %d: its marker %s is missing", r.gen, s.lay.genMarker(r.gen))
	}
	rev := resp.Header.Revision
	// got holds what the generation holds, by encodePath.
	got := map[string]*TableSum{}
	for _, markers := range []string{s.lay.markers(r.gen), s.lay.nestedMarkers(r.gen)} {
		nested := markers == s.lay.nestedMarkers(r.gen)
		err = s.pages(rev, markers, prefixEnd(markers), false, func(k, v []byte, _ int64) error {
			rest := string(k[len(markers):])
			var path []string
			if nested {
				if path, err = parseNestedMarker(rest); err != nil {
					return err
				}
			} else {
				name, err := decodeName(rest)
				if err != nil {
					return err
				}
				path = []string{name}
			}
			seq, err := parseSeq(v)
			if err != nil {
				return fmt.Errorf("marker %q: %w", k, err)
			}
			got[encodePath(path)] = &TableSum{Sequence: seq}
			return nil
		})
		if err != nil {
			return fmt.Errorf("verifying generation %d: %w", r.gen, err)
		}
	}
	for _, recs := range []string{s.lay.topRecords(r.gen), s.lay.nestedRecords(r.gen)} {
		nested := recs == s.lay.nestedRecords(r.gen)
		var cur *TableSum
		curEnc := ""
		err = s.pages(rev, recs, prefixEnd(recs), false, func(k, v []byte, _ int64) error {
			sep := "/"
			if nested {
				sep = "//"
			}
			enc, key, _ := strings.Cut(string(k[len(recs):]), sep)
			if enc != curEnc || cur == nil {
				if cur = got[enc]; cur == nil {
					return fmt.Errorf("record %q has no table marker", k)
				}
				curEnc = enc
			}
			cur.add([]byte(key), v)
			return nil
		})
		if err != nil {
			return fmt.Errorf("verifying generation %d: %w", r.gen, err)
		}
	}
	for _, enc := range slices.Sorted(maps.Keys(r.sums)) {
		want, have := r.sums[enc], got[enc]
		label := want.label()
		switch {
		case have == nil:
			return fmt.Errorf("verifying generation %d: table %s is missing", r.gen, label)
		case have.Sequence != want.sum.Sequence:
			return fmt.Errorf("verifying generation %d: table %s has the sequence %d, not the %d written", r.gen, label, have.Sequence, want.sum.Sequence)
		case *have != want.sum:
			return fmt.Errorf("verifying generation %d: table %s holds %d records (%d bytes) that differ from the %d records (%d bytes) written", r.gen, label, have.Records, have.Bytes, want.sum.Records, want.sum.Bytes)
		}
	}
	for _, enc := range slices.Sorted(maps.Keys(got)) {
		if r.sums[enc] == nil {
			return fmt.Errorf("verifying generation %d: table %q was not written", r.gen, enc)
		}
	}
	return nil
}

// flip makes the new generation current in one txn, if the lock is still
// held and P/current was not written since the restore began, and with
// IfUnchanged, if no key of the old generation was written after the
// watch's revision (its Else reads one such key, to name it).
func (r *Restore) flip() error {
	s := r.s
	cur := s.lay.current()
	cmps := []clientv3.Cmp{s.mu.IsOwner(), clientv3.Compare(clientv3.ModRevision(cur), "=", r.fromRev)}
	orElse := []clientv3.Op{clientv3.OpGet(cur)}
	if u := r.unchanged; u != nil {
		old := s.lay.gen(r.from)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(old), "<", u.rev+1).WithPrefix())
		orElse = append(orElse, clientv3.OpGet(old, clientv3.WithPrefix(), clientv3.WithMinModRev(u.rev+1), clientv3.WithLimit(1), clientv3.WithKeysOnly()))
	}
	resp, lost, err := s.resend(func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.cli.Txn(ctx).
			If(cmps...).
			Then(clientv3.OpPut(cur, strconv.FormatInt(r.gen, 10))).
			Else(orElse...).
			Commit()
	})
	switch {
	case lost:
		return fmt.Errorf("switching to generation %d: %w: %w", r.gen, ErrOutcomeUnknown, s.unavailable(err))
	case err != nil:
		return fmt.Errorf("switching to generation %d: %w", r.gen, err)
	case resp.Succeeded:
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && string(kvs[0].Value) == strconv.FormatInt(r.gen, 10) {
		return nil // an earlier attempt applied
	}
	if len(kvs) > 0 && kvs[0].ModRevision != r.fromRev {
		return fmt.Errorf("switching to generation %d: %w", r.gen, ErrGenerationChanged)
	}
	if len(resp.Responses) > 1 {
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			return s.lay.changeAt(r.from, kvs[0].Key, kvs[0].ModRevision, r.unchanged.rev, kvs[0].Version, false)
		}
	}
	return fmt.Errorf("switching to generation %d: %w", r.gen, ErrLockLost)
}

// Abort removes what the restore wrote, unless Finish made it current; it
// can be deferred. What it cannot remove (the lock lost, the cluster
// unreachable) the next writable Open removes.
func (r *Restore) Abort() error {
	if r.ended {
		return nil
	}
	r.ended = true
	defer func() { <-r.s.writer }()
	if err := r.sender.close(); errors.Is(err, ErrUnavailable) || errors.Is(r.failed, ErrUnavailable) {
		// The cluster did not answer within the request timeout:
		// asking it again to remove the generation would double the
		// time the command takes to fail.
		return fmt.Errorf("the unfinished generation %d stays until the next writable open removes it: the cluster did not answer", r.gen)
	}
	// Interrupted (the caller's context ended), the restore still removes
	// what it wrote, within a second; the next writable Open removes
	// what is left.
	base, cancel := r.s.ctx, context.CancelFunc(func() {})
	if r.s.ctx.Err() != nil {
		base, cancel = context.WithTimeout(context.WithoutCancel(r.s.ctx), time.Second)
	}
	defer cancel()
	if err := r.s.removeGeneration(base, r.gen); err != nil {
		return fmt.Errorf("removing the unfinished generation %d: %w", r.gen, err)
	}
	return nil
}

// sender sends the batches of a restore, restoreSenders at a time.
type sender struct {
	r    *Restore
	ch   chan *request
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
	done bool
}

func newSender(r *Restore) *sender {
	sd := &sender{r: r, ch: make(chan *request)}
	for range restoreSenders {
		sd.wg.Add(1)
		go func() {
			defer sd.wg.Done()
			for p := range sd.ch {
				if sd.failed() != nil {
					continue
				}
				if err := r.send(p); err != nil {
					sd.mu.Lock()
					if sd.err == nil {
						sd.err = err
					}
					sd.mu.Unlock()
				}
			}
		}()
	}
	return sd
}

func (sd *sender) failed() error {
	if sd == nil {
		return nil
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return sd.err
}

// send hands a batch to a sender; it fails when an earlier batch failed.
func (sd *sender) send(p *request) error {
	if err := sd.failed(); err != nil {
		return err
	}
	if len(p.ops) > 0 {
		sd.ch <- p
	}
	return nil
}

// close waits for every batch and returns the first error.
func (sd *sender) close() error {
	if !sd.done {
		sd.done = true
		close(sd.ch)
		sd.wg.Wait()
	}
	return sd.failed()
}

// generations returns every generation that has a marker.
func (s *Store) generations() ([]int64, error) {
	ctx, cancel := s.reqCtx()
	defer cancel()
	p := s.lay.root + "/gen/"
	resp, err := s.cli.Get(ctx, p, clientv3.WithRange(prefixEnd(p)), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var gens []int64
	for _, kv := range resp.Kvs {
		g, err := parseGeneration(kv.Key[len(p):])
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", kv.Key, err)
		}
		gens = append(gens, g)
	}
	return gens, nil
}

// removeStale removes every generation that is not current: what restores
// that did not finish left behind, or an old generation whose removal was
// interrupted. Every writable Open and BeginRestore calls it.
func (s *Store) removeStale() error {
	var resp *clientv3.GetResponse
	err := s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, s.lay.current())
		return err
	})
	if err != nil {
		return fmt.Errorf("removing stale generations: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	cur, err := parseGeneration(resp.Kvs[0].Value)
	if err != nil {
		return err
	}
	gens, err := s.generations()
	if err != nil {
		return fmt.Errorf("removing stale generations: %w", err)
	}
	for _, g := range gens {
		if g == cur {
			continue
		}
		if err := s.removeGeneration(s.ctx, g); err != nil {
			return fmt.Errorf("removing stale generation %d: %w", g, err)
		}
	}
	return nil
}

// removeGeneration deletes the keys of generation g, PageSize keys per
// fenced txn (one DeleteRange from a chunk's first key to the next chunk's
// first), then its marker. It never touches the current generation. It
// finds the chunks in one keys-only stream of the generation: a paged read
// would have etcd count the keys to the end of the generation for every
// page, time quadratic in its size (BenchmarkOpenStale: 100,000 keys took
// 9.8-18 s to remove that way, 3.4 s now). A compaction that overtakes
// the stream fails the removal; the chunks deleted stay deleted and the
// next writable Open removes the rest.
func (s *Store) removeGeneration(base context.Context, g int64) error {
	p := s.lay.gen(g)
	end := prefixEnd(p)
	gen := strconv.FormatInt(g, 10)
	fence := []clientv3.Cmp{s.mu.IsOwner(), clientv3.Compare(clientv3.Value(s.lay.current()), "!=", gen)}
	remove := func(op clientv3.Op) error {
		if err := failpoint.Inject("etcd.restore.delete"); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(base, s.opts.RequestTimeout)
		tr, err := s.cli.Txn(ctx).If(fence...).Then(op).Commit()
		cancel()
		if err != nil {
			return err
		}
		if !tr.Succeeded {
			return fmt.Errorf("deleting generation %d: %w, or it became current", g, ErrLockLost)
		}
		return failpoint.Inject("etcd.restore.deleted")
	}
	from, n := p, 0
	err := s.streamKeys(base, p, end, func(k []byte) error {
		if n == s.opts.PageSize {
			if err := remove(clientv3.OpDelete(from, clientv3.WithRange(string(k)))); err != nil {
				return err
			}
			from, n = string(k), 0
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	// The last chunk runs to the end of the generation: nothing writes
	// keys into a generation that is not current (every write is fenced
	// on the lock or on P/current), but if anything did, it goes too.
	if n > 0 {
		if err := remove(clientv3.OpDelete(from, clientv3.WithRange(end))); err != nil {
			return err
		}
	}
	return remove(clientv3.OpDelete(s.lay.genMarker(g)))
}

// streamKeys calls fn for every key in [from, end), in order, reading the
// keys only in one stream (page by page on a cluster before v3.7). fn may
// write meanwhile.
//
// Like every request, the stream waits for the cluster within the request
// timeout: when no answer comes for that long (a cluster without quorum,
// a paused member), it fails with an [UnavailableError] naming the
// members. The time fn takes does not count.
func (s *Store) streamKeys(base context.Context, from, end string, fn func(k []byte) error) error {
	ctx, cancel := context.WithCancelCause(base)
	idle := time.AfterFunc(s.opts.RequestTimeout, func() { cancel(errStreamIdle) })
	var ch clientv3.GetStreamChan
	defer func() {
		idle.Stop()
		cancel(nil)
		if ch != nil {
			go func() {
				for range ch { // let the client's goroutine end
				}
			}()
		}
	}()
	idleErr := func(err error) error {
		if errors.Is(context.Cause(ctx), errStreamIdle) && base.Err() == nil {
			return s.unavailable(fmt.Errorf("reading the keys from %q: %w", from, errStreamIdle))
		}
		return err
	}
	ch, err := s.cli.GetStream(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly())
	if status.Code(err) == codes.Unimplemented {
		ch = nil
		return s.pages(0, from, end, true, func(k, _ []byte, _ int64) error { return fn(k) })
	}
	if err != nil {
		ch = nil
		return idleErr(err)
	}
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if status.Code(err) == codes.Unimplemented {
				return s.pages(0, from, end, true, func(k, _ []byte, _ int64) error { return fn(k) })
			}
			return idleErr(err)
		}
		if !idle.Stop() {
			return idleErr(ctx.Err())
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv.Key); err != nil {
				return err
			}
		}
		idle.Reset(s.opts.RequestTimeout)
	}
	if err := context.Cause(ctx); errors.Is(err, errStreamIdle) {
		return idleErr(err)
	}
	return nil
}

// errStreamIdle is a stream that got no answer within the request
// timeout.
var errStreamIdle = errors.New("no answer in time")
