// Package failpoint names the dangerous moments of the backup, restore and
// offline upgrade (just before and after each rename or swap), so that
// crash tests can kill, stop or fail a real process exactly there.
//
// Production code calls [Inject] at each point; it does nothing unless a
// test has set [Hook] (the migrator's tests set it in their test binary,
// from an environment variable that only the test code reads).
package failpoint

import (
	"context"
	"sync/atomic"
)

// Hook, when not nil, is called at each point with its name. It may kill
// the process, block, or return an error, which the caller returns as if
// the step had failed. Only tests set it, before anything runs.
var Hook func(name string) error

// Inject runs Hook at the point name; nil when no test hook is set.
func Inject(name string) error {
	if Hook == nil {
		return nil
	}
	return Hook(name)
}

// command is the context SetCommand recorded.
var command atomic.Pointer[context.Context]

// SetCommand records ctx, the context of the command a process runs (the
// migrator's, which its first SIGINT or SIGTERM cancels), when a test has
// set Hook: a Hook that pauses a process at a point for a test to signal
// it can then wait, before it lets the command go on, until the signal
// has been handled, instead of for a while.
func SetCommand(ctx context.Context) {
	if Hook != nil {
		command.Store(&ctx)
	}
}

// Command returns the context SetCommand recorded, or nil.
func Command() context.Context {
	if p := command.Load(); p != nil {
		return *p
	}
	return nil
}
