package etcdtest

import (
	"context"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// RPCCounter counts the KV requests of a client through its Intercept,
// given to Cluster.Client: Txns that write (commits), Txns that only read
// (a transaction's pin, read by Begin) and Ranges, with the revisions of
// the last successful commit's and the last pin's answers.
type RPCCounter struct {
	mu                     sync.Mutex
	commits, pins, ranges  int
	lastCommitRev, lastPin int64
}

// Intercept is a grpc.UnaryClientInterceptor that counts.
func (c *RPCCounter) Intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r := req.(type) {
	case *pb.TxnRequest:
		writes := false
		for _, op := range r.Success {
			writes = writes || op.GetRequestRange() == nil
		}
		resp, _ := reply.(*pb.TxnResponse)
		if writes {
			c.commits++
			if err == nil && resp != nil && resp.Succeeded {
				c.lastCommitRev = resp.Header.Revision
			}
		} else {
			c.pins++
			if err == nil && resp != nil {
				c.lastPin = resp.Header.Revision
			}
		}
	case *pb.RangeRequest:
		c.ranges++
	}
	return err
}

// Counts returns the commits, pins and ranges counted so far.
func (c *RPCCounter) Counts() (commits, pins, ranges int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commits, c.pins, c.ranges
}

// LastCommitRev is the revision of the last commit that succeeded.
func (c *RPCCounter) LastCommitRev() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastCommitRev
}

// LastPin is the revision of the last pin's answer.
func (c *RPCCounter) LastPin() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastPin
}
