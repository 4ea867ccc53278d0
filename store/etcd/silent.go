package etcd

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A silent member is one whose connection is open but that answers
// nothing: a paused process, a frozen VM, a partition that drops packets.
// gRPC keeps sending requests to it until its keepalive closes the
// connection (KeepAliveTime + KeepAliveTimeout, 13 s by default, longer
// than a request's timeout), so each request has a chance of losing an
// attempt to it, and a commit whose attempts keep landing there ends with
// its outcome unknown although the other members have a leader.
//
// So, when an attempt gets no answer in time, the store asks every member
// for its status (probeTimeout each, at once). When some members answer
// and one of them knows a leader, the members that did not answer in time
// are taken out of the client's endpoints: gRPC closes their connections
// and every later attempt goes to a member that answers. A goroutine asks
// the removed members again every second and puts each back as soon as
// it answers. Members that refuse connections (dead) stay: gRPC does not
// send to them anyway, and they come back by themselves. Only a client
// the store dialled itself is changed: one the caller passed
// (Options.Client) keeps its endpoints.
type silent struct {
	mu      sync.Mutex
	all     []string        // every endpoint the client was given
	out     map[string]bool // endpoints taken out
	probing bool            // a probe is under way
	last    time.Time       // when the last probe ended
}

// timedOut reports whether err is an attempt that ended for lack of an
// answer while ctx, the request's, goes on.
func timedOut(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

// attemptFailed is told of every attempt that failed with err within ctx,
// the request's context; an attempt that got no answer in time has the
// silent members taken out.
func (s *Store) attemptFailed(ctx context.Context, err error) {
	if timedOut(ctx, err) {
		s.avoidSilent()
	}
}

// avoidSilent probes every member and takes out the ones that do not
// answer, when another answers and knows a leader. Concurrent calls, and
// calls within a second of the last probe, return at once: one probe
// serves them.
func (s *Store) avoidSilent() {
	if !s.ownClient || s.ctx.Err() != nil {
		return
	}
	sl := &s.silent
	sl.mu.Lock()
	if sl.probing || time.Since(sl.last) < time.Second || len(sl.all) < 2 {
		sl.mu.Unlock()
		return
	}
	sl.probing = true
	all := sl.all
	sl.mu.Unlock()

	ms := s.probeEndpoints(s.ctx, all, probeTimeout)
	var quiet []string
	leader := false
	for i, m := range ms {
		switch {
		case m.Err == nil && m.Leader != 0:
			leader = true
		case m.Err != nil && errors.Is(m.Err, context.DeadlineExceeded):
			quiet = append(quiet, all[i])
		}
	}

	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.probing, sl.last = false, time.Now()
	if !leader || len(quiet) == 0 || s.ctx.Err() != nil {
		return
	}
	start := len(sl.out) == 0
	if sl.out == nil {
		sl.out = map[string]bool{}
	}
	for _, ep := range quiet {
		sl.out[ep] = true
	}
	s.cli.SetEndpoints(sl.inLocked()...)
	if start {
		go s.readmit()
	}
}

// inLocked returns the endpoints not taken out, in the given order.
func (sl *silent) inLocked() []string {
	return slices.DeleteFunc(slices.Clone(sl.all), func(ep string) bool { return sl.out[ep] })
}

// readmit asks the members taken out for their status every second and
// puts back each one that answers, until none is out or the store's
// context ends.
func (s *Store) readmit() {
	sl := &s.silent
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(time.Second):
		}
		sl.mu.Lock()
		var out []string
		for _, ep := range sl.all {
			if sl.out[ep] {
				out = append(out, ep)
			}
		}
		sl.mu.Unlock()
		ms := s.probeEndpoints(s.ctx, out, probeTimeout)
		sl.mu.Lock()
		back := false
		for i, m := range ms {
			if m.Err == nil {
				delete(sl.out, out[i])
				back = true
			}
		}
		if back && s.ctx.Err() == nil {
			s.cli.SetEndpoints(sl.inLocked()...)
		}
		done := len(sl.out) == 0
		sl.mu.Unlock()
		if done {
			return
		}
	}
}
