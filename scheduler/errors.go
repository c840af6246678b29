// Named failures of the scheduler.
package scheduler

import "errors"

var (
	// ErrOverCapacity: the node serves MaxCalls calls already; back off and retry.
	ErrOverCapacity = errors.New("scheduler: over capacity")
	// ErrClosed: the scheduler is shut down.
	ErrClosed = errors.New("scheduler: closed")
	// ErrBadResult: a function returned a result of the wrong length or type.
	ErrBadResult = errors.New("scheduler: bad result")
	// ErrNoPeers: placement sent a task to a peer, and this node sends
	// tasks to no peer.
	ErrNoPeers = errors.New("scheduler: placement chose a peer, and this node sends tasks to no peer")
)
