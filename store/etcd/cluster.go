package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookreg/hookreg/store"
)

// ErrUnavailable is the cluster not answering: no quorum, every member
// down or paused, or none reachable with the store's TLS settings. An
// [*UnavailableError] wraps it.
// It wraps [store.ErrUnavailable].
var ErrUnavailable = fmt.Errorf("%w: the cluster did not answer", store.ErrUnavailable)

// UnavailableError is a request that failed because the cluster did not
// answer, with what each member said when asked right after. It wraps
// [ErrUnavailable] (and so [store.ErrUnavailable]) and the request's own
// error.
type UnavailableError struct {
	// Err is the request's error.
	Err error
	// Members is what each endpoint answered to a status request.
	Members []Member
}

func (e *UnavailableError) Error() string {
	return e.Summary() + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Summary says which members answered and which did not, and why: "no
// leader: 1 of 3 members answered (127.0.0.1:2379: connection refused;
// 127.0.0.1:2381: no answer within 1s)".
func (e *UnavailableError) Summary() string {
	return summarize(e.Members)
}

// Member is what one endpoint answered to a status request.
type Member struct {
	// Endpoint is the endpoint asked.
	Endpoint string
	// Err is why it did not answer, nil when it did.
	Err error
	// ID is the member's ID, Leader the ID of the leader it follows (0:
	// none), both when it answered.
	ID, Leader uint64
	// DBSize and DBSizeQuota are its backend's size and quota.
	DBSize, DBSizeQuota int64
}

// Down reports why the member did not answer, "" when it did: the cause
// only (connection refused, the certificate's authority unknown, ...).
func (m Member) Down() string {
	if m.Err == nil {
		return ""
	}
	return cause(m.Err)
}

// summarize says how many members answered, whether one of them knows a
// leader, and why the others did not answer.
func summarize(ms []Member) string {
	answered, leader := 0, false
	var down []string
	for _, m := range ms {
		if m.Err != nil {
			down = append(down, m.Endpoint+": "+m.Down())
			continue
		}
		answered++
		leader = leader || m.Leader != 0
	}
	var b strings.Builder
	switch {
	case answered == 0:
		fmt.Fprintf(&b, "no member answered (%d asked)", len(ms))
	case !leader:
		fmt.Fprintf(&b, "no leader: %d of %d members answered", answered, len(ms))
	default:
		fmt.Fprintf(&b, "%d of %d members answered, with a leader", answered, len(ms))
	}
	if len(down) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(down, "; "))
	}
	return b.String()
}

// cause reduces a connection error to its cause: gRPC wraps a failed TLS
// handshake or a refused connection in layers of "rpc error: code = ...
// desc = connection error: desc = ...".
func cause(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time (down, paused or cut off)"
	}
	var tm *tlsMismatch
	if errors.As(err, &tm) {
		return tm.Error()
	}
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Message()
	}
	for _, p := range []string{"connection error: desc = ", "transport: ", "authentication handshake failed: ", "Error while dialing: ", "dial tcp ", "error reading server preface: "} {
		if i := strings.LastIndex(msg, p); i >= 0 {
			msg = msg[i+len(p):]
		}
	}
	msg = strings.Trim(msg, `"`)
	// "dial tcp 127.0.0.1:2379: connect: ..." names the endpoint the
	// caller names already.
	if host, rest, ok := strings.Cut(msg, ": "); ok && strings.Count(host, ":") >= 1 && !strings.Contains(host, " ") {
		msg = rest
	}
	switch {
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		msg += " (the member serves plain connections: TLS is configured for a cluster without it)"
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"):
		msg += " (the member requires a client certificate the client did not send or it refused)"
	case strings.Contains(msg, "unknown authority"):
		msg += " (the member's certificate is not signed by a trusted CA)"
	case strings.Contains(msg, "http2: frame too large"):
		msg += " (the member may require TLS: a CA to verify it)"
	}
	return msg
}

// probeTimeout bounds the status request of each member when the store
// finds out why the cluster did not answer.
const probeTimeout = time.Second

// probe asks every endpoint for its status (the members taken out for
// silence included), at once, each request failing fast (no wait for a
// connection that cannot be made), within timeout.
func (s *Store) probe(ctx context.Context, timeout time.Duration) []Member {
	s.silent.mu.Lock()
	eps := s.silent.all
	s.silent.mu.Unlock()
	if eps == nil {
		eps = s.cli.Endpoints()
	}
	return s.probeEndpoints(ctx, eps, timeout)
}

// probeEndpoints asks each of eps for its status, as probe does.
func (s *Store) probeEndpoints(ctx context.Context, eps []string, timeout time.Duration) []Member {
	ms := make([]Member, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			ms[i] = s.probeOne(ctx, ep, timeout)
		})
	}
	wg.Wait()
	return ms
}

func (s *Store) probeOne(ctx context.Context, ep string, timeout time.Duration) Member {
	m := Member{Endpoint: strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://")}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := s.cli.Dial(ep)
	if err != nil {
		m.Err = err
		return m
	}
	defer conn.Close()
	r, err := pb.NewMaintenanceClient(conn).Status(ctx, &pb.StatusRequest{}, grpc.WaitForReady(false))
	if err != nil {
		if ctx.Err() != nil {
			err = context.DeadlineExceeded
		}
		m.Err = err
		// A connection closed at once says little: with TLS, the
		// member may serve plain connections; without, it may
		// require TLS.
		if strings.HasSuffix(err.Error(), "EOF") || strings.HasSuffix(err.Error(), `EOF"`) {
			if s.opts.TLS != nil {
				m.Err = &tlsMismatch{err: err, msg: "the member closed the connection in the TLS handshake: it may serve plain connections, without TLS"}
			} else if !strings.Contains(err.Error(), "authentication handshake") {
				m.Err = &tlsMismatch{err: err, msg: "the member closed the connection: it may require TLS (a CA to verify it)"}
			}
		}
		return m
	}
	m.ID, m.Leader, m.DBSize, m.DBSizeQuota = r.Header.MemberId, r.Leader, r.DbSize, r.DbSizeQuota
	return m
}

// tlsMismatch is a connection a member closed at once, with what it
// likely means.
type tlsMismatch struct {
	err error
	msg string
}

func (e *tlsMismatch) Error() string { return e.msg + " (" + cause(e.err) + ")" }
func (e *tlsMismatch) Unwrap() error { return e.err }

// fatal reports whether a member's error is a mistake of the client's
// configuration that waiting does not mend: TLS.
func fatal(err error) bool {
	var tm *tlsMismatch
	if errors.As(err, &tm) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") || strings.Contains(msg, "authentication handshake failed")
}

// reachable waits until a member of the cluster knows a leader, asking
// every member for its status, until ctx ends. It fails at once when
// every member refused the client's TLS settings, with an
// [*UnavailableError] naming each member's cause.
func (s *Store) reachable(ctx context.Context) error {
	delay := 50 * time.Millisecond
	allFatal := 0
	for {
		ms := s.probe(ctx, probeTimeout)
		fatals := 0
		for _, m := range ms {
			if m.Err == nil && m.Leader != 0 {
				return nil
			}
			if m.Err != nil && fatal(m.Err) {
				fatals++
			}
		}
		if fatals == len(ms) {
			allFatal++
		} else {
			allFatal = 0
		}
		if allFatal == 2 {
			return &UnavailableError{Err: errors.New("the client's TLS settings do not fit the cluster"), Members: ms}
		}
		select {
		case <-ctx.Done():
			return &UnavailableError{Err: ctx.Err(), Members: ms}
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// retryable reports whether err is a transient failure of the cluster that
// left a read undone: a member unreachable or stopped, an election under
// way, a request that timed out in the cluster. etcd's own errors come as
// rpctypes.EtcdError, whose gRPC code is Unknown: their Code tells.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || isRPC(err, rpctypes.ErrGRPCRequestTooManyRequests)
	}
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.ResourceExhausted:
		return isRPC(err, rpctypes.ErrGRPCRequestTooManyRequests)
	}
	return false
}

// backoff returns the wait before the next attempt after delay, with
// jitter, and the delay after that.
func backoff(delay time.Duration) (wait, next time.Duration) {
	wait = delay/2 + rand.N(delay/2+1)
	return wait, min(2*delay, 500*time.Millisecond)
}

// read runs fn, which writes nothing, with a context bounded by the
// store's context and its request timeout, again while it fails with a
// transient failure of the cluster. When the time is up, the error says
// which members answered.
func (s *Store) read(fn func(ctx context.Context) error) error {
	ctx, cancel := s.reqCtx()
	defer cancel()
	return s.retry(ctx, fn)
}

// retry runs fn with ctx, again while it fails with a transient failure of
// the cluster, until ctx ends. Each attempt ends after attempt(): a member
// that does not answer costs one attempt, and the next goes to another.
func (s *Store) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	delay := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, s.attempt())
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		s.attemptFailed(ctx, err)
		if !retryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if ctx.Err() != nil {
			return s.unavailable(err)
		}
		var wait time.Duration
		wait, delay = backoff(delay)
		select {
		case <-ctx.Done():
			return s.unavailable(err)
		case <-time.After(wait):
		}
	}
}

// attempt is how long one attempt of a request may take: a quarter of
// the request timeout, between 1 s and 3 s.
func (s *Store) attempt() time.Duration {
	return min(max(s.opts.RequestTimeout/4, time.Second), 3*time.Second, s.opts.RequestTimeout)
}

// unavailable explains err, a request the cluster did not answer in time,
// by asking every member for its status. It returns err itself when the
// store's context ended (the caller gave up, not the cluster).
func (s *Store) unavailable(err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", s.ctx.Err())
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	return &UnavailableError{Err: err, Members: s.probe(s.ctx, probeTimeout)}
}
