package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/store"
)

// request is the etcd txn of a commit.
type request struct {
	cmps   []clientv3.Cmp
	ops    []reqOp // the last one writes the commit's tag into the lock key
	size   int     // bytes of the encoded txn request
	writes int     // records written
	bytes  int     // their keys' and values' bytes
}

// reqOp is a put or a range delete.
type reqOp struct {
	del   bool
	key   string
	end   string // of a range delete; empty deletes key alone
	value []byte
	lock  bool // the lock key: keep its lease
}

func (o reqOp) client() clientv3.Op {
	switch {
	case o.del && o.end != "":
		return clientv3.OpDelete(o.key, clientv3.WithRange(o.end))
	case o.del:
		return clientv3.OpDelete(o.key)
	case o.lock:
		return clientv3.OpPut(o.key, string(o.value), clientv3.WithIgnoreLease())
	}
	return clientv3.OpPut(o.key, string(o.value))
}

func (o reqOp) pb() *pb.RequestOp {
	if o.del {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(o.key), RangeEnd: []byte(o.end)}}}
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(o.key), Value: o.value, IgnoreLease: o.lock}}}
}

// tagWidth is the length of a commit tag's number, fixed so that a
// planned request has the size of the one sent; the holder's information
// (holderInfo, fixed when the lock is taken) follows it.
const tagWidth = 16

// commitTag is the value a commit writes into the lock key: the commit's
// number and the holder's information.
func (s *Store) commitTag(seq uint64) []byte {
	return fmt.Appendf(nil, "%0*x%s", tagWidth, seq, s.holder)
}

// plan builds the commit's txn: the compares (lock, generation, written
// keys, read metadata keys, dropped tables) and the operations.
func (t *Tx) plan() (*request, error) {
	lay := t.s.lay
	p := &request{}
	if t.s.mu == nil {
		return nil, fmt.Errorf("writing: %w", ErrLockLost)
	}
	p.cmps = append(p.cmps, t.s.mu.IsOwner(), clientv3.Compare(clientv3.Value(lay.current()), "=", fmt.Sprint(t.gen)))
	states := slices.Clone(t.states)
	slices.SortFunc(states, func(a, b *tableState) int { return archive.ComparePaths(a.path, b.path) })
	written := map[string]bool{}
	for _, st := range states {
		prefix := lay.records(t.gen, st.path)
		marker := lay.marker(t.gen, st.path)
		if st.cleared || st.markerChanged() {
			p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(marker), "=", st.markerRev))
		}
		switch {
		case st.exists && st.markerChanged():
			p.ops = append(p.ops, reqOp{key: marker, value: []byte(encodeSeq(st.seq))})
		case !st.exists && st.existed:
			p.ops = append(p.ops, reqOp{del: true, key: marker})
		}
		if st.guard != "" && st.exists && !st.existed {
			// A new nested table: no record took its name in the
			// parent since rev.
			p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(st.guard), "=", 0))
		}
		if st.cleared {
			// No record written after rev, then every record
			// deleted but the ones put: range deletes around them,
			// as a txn may not delete and put the same key.
			end := prefixEnd(prefix)
			p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(prefix), "<", t.rev+1).WithRange(end))
			from := prefix
			for _, k := range st.keys {
				ek := prefix + k
				if from < ek {
					p.ops = append(p.ops, reqOp{del: true, key: from, end: ek})
				}
				w := st.writes[k]
				p.ops = append(p.ops, reqOp{key: ek, value: w.value})
				p.writes++
				p.bytes += len(k) + len(w.value)
				from = ek + "\x00"
			}
			p.ops = append(p.ops, reqOp{del: true, key: from, end: end})
			continue
		}
		for _, k := range st.keys {
			w := st.writes[k]
			ek := prefix + k
			written[ek] = true
			if w.known {
				// Read, so unchanged: not even deleted.
				p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(ek), "=", w.modRev))
			} else {
				// Written blind: not written since rev.
				p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(ek), "<", t.rev+1))
			}
			p.ops = append(p.ops, reqOp{del: w.del, key: ek, value: w.value})
			p.writes++
			p.bytes += len(k) + len(w.value)
		}
	}
	if meta := t.top[store.MetaTable]; meta == nil || !meta.cleared {
		for _, ek := range t.metaReads {
			if !written[ek] {
				p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(ek), "=", t.seen[ek]))
			}
		}
	}
	p.ops = append(p.ops, reqOp{key: t.s.mu.Key(), value: t.s.commitTag(0), lock: true})
	req := &pb.TxnRequest{}
	for _, c := range p.cmps {
		req.Compare = append(req.Compare, c.GetCompare())
	}
	for _, o := range p.ops {
		req.Success = append(req.Success, o.pb())
	}
	for _, k := range []string{t.s.mu.Key(), lay.current()} {
		req.Failure = append(req.Failure, &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}})
	}
	p.size = proto.Size(req)
	return p, nil
}

// LimitError is a transaction that does not fit the cluster's limits. It
// wraps [ErrTooLarge].
type LimitError struct {
	// Writes and Bytes are the records the transaction writes and the
	// bytes of their keys and values.
	Writes, Bytes int
	// Compares, Ops and Size are what its txn needs, when known
	// (Size 0 when the limit was hit while writing).
	Compares, Ops, Size int
	// Limits are the store's.
	Limits Limits
	// Server is the cluster's refusal, when the cluster refused it.
	Server error
}

func (e *LimitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "transaction too large for the cluster: %d writes, %d bytes of keys and values", e.Writes, e.Bytes)
	if e.Size > 0 {
		fmt.Fprintf(&b, " (%d compares, %d operations, a %d-byte request)", e.Compares, e.Ops, e.Size)
	}
	fmt.Fprintf(&b, "; one etcd txn holds at most %d compares and %d operations (--max-txn-ops %d) and %d bytes (--max-request-bytes %d, client send limit %d)",
		e.Limits.MaxTxnOps, e.Limits.MaxTxnOps, e.Limits.MaxTxnOps, e.Limits.requestBytes(""), e.Limits.MaxRequestBytes, e.Limits.MaxCallSendBytes)
	if e.Server != nil {
		fmt.Fprintf(&b, "; the cluster said: %v", e.Server)
	}
	b.WriteString(": raise --max-txn-ops/--max-request-bytes on the cluster (and the store's limits to match), or run the hook offline")
	return b.String()
}

func (e *LimitError) Unwrap() error { return ErrTooLarge }

// fitsOneMore refuses a new write of n bytes that cannot fit whatever
// else happens: every write takes at least one operation, and the commit
// one more.
func (t *Tx) fitsOneMore(n int) error {
	l := t.s.limits
	if t.nwrites+2 > l.MaxTxnOps || t.wbytes+n > l.requestBytes(t.s.opts.Username) {
		return &LimitError{Writes: t.nwrites + 1, Bytes: t.wbytes + n, Limits: l}
	}
	return nil
}

// fits refuses a request beyond the store's limits.
func (t *Tx) fits(p *request) error {
	l := t.s.limits
	if len(p.cmps) > l.MaxTxnOps || len(p.ops) > l.MaxTxnOps || p.size > l.requestBytes(t.s.opts.Username) {
		return &LimitError{Writes: p.writes, Bytes: p.bytes, Compares: len(p.cmps), Ops: len(p.ops), Size: p.size, Limits: l}
	}
	return nil
}

// commit sends p. When the answer is lost (a member died, an election,
// a request the cluster timed out) it finds out from the lock key whether
// the txn applied, and sends it again only when it knows it did not: the
// compares let at most one send apply. It gives up when the request
// timeout passes, with [ErrOutcomeUnknown] when a send's outcome is still
// unknown.
func (s *Store) commit(p *request, gen int64) error {
	_, err := s.commitReading(p, gen, nil)
	return err
}

// commitReading is commit with reads appended to the txn's success
// branch: etcd runs them after the commit's writes, at the commit's
// revision, atomically with it. It returns the txn's answer, whose
// last len(reads) responses are theirs, when the commit applied and its
// answer came from the send that applied it; nil when the reads were not
// sent or their answer is not known (an answer was lost on the way: the
// send that applied is not known, or was found applied by the lock key).
func (s *Store) commitReading(p *request, gen int64, reads []clientv3.Op) (*clientv3.TxnResponse, error) {
	tag := s.commitTag(s.seq.Add(1))
	ops := make([]clientv3.Op, len(p.ops), len(p.ops)+len(reads))
	for i, o := range p.ops {
		if o.lock {
			o.value = tag
		}
		ops[i] = o.client()
	}
	ops = append(ops, reads...)
	lockKey, current := s.mu.Key(), s.lay.current()
	ctx, cancel := s.reqCtx()
	defer cancel()
	var lastErr error
	unknown := false
	delay := 20 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, s.attempt())
		resp, err := s.cli.Txn(actx).If(p.cmps...).Then(ops...).Else(clientv3.OpGet(lockKey), clientv3.OpGet(current)).Commit()
		acancel()
		if err == nil {
			if resp.Succeeded {
				if unknown || len(reads) == 0 {
					return nil, nil
				}
				return resp, nil
			}
			lock := resp.Responses[0].GetResponseRange().Kvs
			if len(lock) > 0 && string(lock[0].Value) == string(tag) {
				return nil, nil // an earlier send applied
			}
			switch cur := resp.Responses[1].GetResponseRange().Kvs; {
			case len(lock) == 0 && unknown:
				return nil, fmt.Errorf("%w: the lock was lost meanwhile: %w", ErrOutcomeUnknown, lastErr)
			case len(lock) == 0:
				return nil, ErrLockLost
			case len(cur) == 0 || string(cur[0].Value) != fmt.Sprint(gen):
				return nil, ErrGenerationChanged
			}
			return nil, ErrConflict
		}
		if definite(err) {
			return nil, s.refusal(p, err)
		}
		s.attemptFailed(ctx, err)
		unknown, lastErr = true, err
		if s.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: interrupted: %w", ErrOutcomeUnknown, s.ctx.Err())
		}
		// Did it apply? Ask, through whichever member answers.
		var applied bool
		gerr := s.retry(ctx, func(ctx context.Context) error {
			g, err := s.cli.Get(ctx, lockKey)
			if err == nil {
				applied = len(g.Kvs) > 0 && string(g.Kvs[0].Value) == string(tag)
			}
			return err
		})
		if gerr != nil {
			if s.ctx.Err() != nil {
				return nil, fmt.Errorf("%w: interrupted: %w", ErrOutcomeUnknown, s.ctx.Err())
			}
			// The read's failure has asked every member already: a
			// second probe would add its second to the timeout.
			var ue *UnavailableError
			if errors.As(gerr, &ue) {
				return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, &UnavailableError{Err: lastErr, Members: ue.Members})
			}
			return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, s.unavailable(lastErr))
		}
		if applied {
			return nil, nil
		}
		// It did not apply (yet): send it again.
		var wait time.Duration
		wait, delay = backoff(delay)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, s.unavailable(lastErr))
		case <-time.After(wait):
		}
	}
}

// definite reports whether err is a refusal of the request, which then did
// not apply.
func definite(err error) bool {
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	switch code {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange:
		return true
	}
	return false
}

// ErrNoSpace is the cluster refusing writes because its database reached
// its quota.
var ErrNoSpace = errors.New("the cluster's database is full (--quota-backend-bytes): compact and defragment it, or raise the quota, then retry")

// refusal explains a definite refusal of p.
func (s *Store) refusal(p *request, err error) error {
	switch {
	case isRPC(err, rpctypes.ErrGRPCNoSpace):
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	case isRPC(err, rpctypes.ErrGRPCTooManyOps), isRPC(err, rpctypes.ErrGRPCRequestTooLarge),
		status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "larger than max"):
		return &LimitError{Writes: p.writes, Bytes: p.bytes, Compares: len(p.cmps), Ops: len(p.ops), Size: p.size, Limits: s.limits, Server: err}
	}
	return err
}

// isRPC reports whether err is the server's error rpcErr, whichever form
// the client gave it.
func isRPC(err, rpcErr error) bool {
	return rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpcErr)
}
