package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// keepLease keeps the lock's lease alive until the store's context ends,
// renewing it every third of its TTL through whichever member answers:
// each renewal is a request of its own, its attempts bounded like any
// other, so a member that stops answering (paused, cut off) costs an
// attempt, not the lease. (The client's own keep-alive stream, which the
// session also runs, stays on one member until gRPC's keepalive closes
// its connection, after more than the lease's 10 s.) Only a lease the
// cluster says is gone closes s.lost.
func (s *Store) keepLease(lease clientv3.LeaseID, ttl time.Duration) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(ttl / 3):
		}
		ctx, cancel := context.WithTimeout(s.ctx, ttl)
		err := s.retry(ctx, func(ctx context.Context) error {
			_, err := s.cli.KeepAliveOnce(ctx, lease)
			return err
		})
		cancel()
		if s.ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.lostOnce.Do(func() { close(s.lost) })
			return
		}
	}
}

// revoke revokes a lease within a second, even when the store's context
// has ended: what a migrator interrupted by a signal holds is released
// before it exits.
func (s *Store) revoke(lease clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), time.Second)
	defer cancel()
	_, err := s.cli.Revoke(ctx, lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}

// holderInfo is what the lock key tells of its holder, after the commit
// tag: "pid 1234 on host since 2006-01-02T15:04:05Z", at most maxHolder
// bytes.
func holderInfo(since time.Time) string {
	host, _ := os.Hostname()
	info := fmt.Sprintf(" pid %d on %s since %s", os.Getpid(), host, since.UTC().Format(time.RFC3339))
	if len(info) > maxHolder {
		info = info[:maxHolder]
	}
	return info
}

// maxHolder bounds holderInfo.
const maxHolder = 96

// writeHolder writes the holder's information into the lock key it just
// took, so that status and a refused migrator can tell who holds it and
// since when. It is best effort: the commits write it again.
func (s *Store) writeHolder() {
	s.holder = holderInfo(s.since)
	_ = s.read(func(ctx context.Context) error {
		_, err := s.cli.Txn(ctx).If(s.mu.IsOwner()).Then(clientv3.OpPut(s.mu.Key(), string(s.commitTag(0)), clientv3.WithIgnoreLease())).Commit()
		return err
	})
}

// Holder is the migrator that holds a store's lock.
type Holder struct {
	// Key is the lock key, Lease its lease.
	Key   string
	Lease clientv3.LeaseID
	// Info tells the holder's process, host and since when ("pid 1234
	// on host since 2006-01-02T15:04:05Z"), when it wrote it.
	Info string
	// Since is when it took the lock, zero when unknown.
	Since time.Time
	// TTL is the lease's remaining time: the lock is free after it
	// unless its holder keeps the lease alive. Granted is its full TTL.
	TTL, Granted time.Duration
}

func (h *Holder) String() string {
	var b strings.Builder
	b.WriteString("held by a migrator")
	if h.Info != "" {
		fmt.Fprintf(&b, " (%s)", h.Info)
	}
	fmt.Fprintf(&b, ", lock key %s; its lease expires in %d s unless its holder renews it", h.Key, int64(h.TTL/time.Second))
	return b.String()
}

// Holder returns the migrator that holds the store's lock, nil when none
// does.
func (s *Store) Holder() (*Holder, error) {
	var resp *clientv3.GetResponse
	p := s.lay.lockPrefix() + "/"
	err := s.read(func(ctx context.Context) (err error) {
		resp, err = s.cli.Get(ctx, p, clientv3.WithFirstCreate()...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the lock of %s: %w", s.name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	h := &Holder{Key: string(kv.Key), Lease: clientv3.LeaseID(kv.Lease)}
	if v := string(kv.Value); len(v) > tagWidth {
		h.Info = strings.TrimSpace(v[tagWidth:])
		if i := strings.LastIndex(h.Info, " since "); i >= 0 {
			h.Since, _ = time.Parse(time.RFC3339, h.Info[i+len(" since "):])
		}
	}
	var ttl *clientv3.LeaseTimeToLiveResponse
	err = s.read(func(ctx context.Context) (err error) {
		ttl, err = s.cli.TimeToLive(ctx, h.Lease)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the lease of the lock of %s: %w", s.name, err)
	}
	h.TTL, h.Granted = time.Duration(max(ttl.TTL, 0))*time.Second, time.Duration(ttl.GrantedTTL)*time.Second
	return h, nil
}

// holderNote describes the lock's holder for a refused Open, "" when it
// cannot be read.
func (s *Store) holderNote() string {
	h, err := s.Holder()
	if err != nil || h == nil {
		return ""
	}
	note := "; it is " + h.String()
	if h.TTL > 0 {
		note += "; if that migrator was killed, the lock is free in " + strconv.Itoa(int(h.TTL/time.Second)) + " s"
	}
	return note
}
