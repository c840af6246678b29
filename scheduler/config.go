// Config of the scheduler, with its defaults and checks.
package scheduler

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Config says how much the scheduler may run and hold at once.
type Config struct {
	// Executors is the number of executor goroutines for native functions.
	// Zero means runtime.GOMAXPROCS(0).
	Executors int
	// Workers is the number of tasks of Python functions (udf.Costed) run
	// at once: the size of the worker pool they run on. Such tasks queue
	// against it, not against the executors. Zero means they run on the
	// executors like native functions.
	Workers int
	// Placement decides where each task runs. Nil means Local: here.
	Placement Placement
	// Remote runs the tasks placement sends to peers. Nil means the node
	// is alone: a Decision naming a peer fails the call with ErrNoPeers.
	Remote Remote
	// SpillBacklog is how many tasks may wait in a lane's queue before a
	// task spilled here by a peer is refused (ErrSpillBusy). Zero means
	// twice the lane's slots.
	SpillBacklog int
	// Window is the number of input batches one call may hold at once (read,
	// running or waiting to be written). Zero means 2. It bounds a call's
	// memory: a client that sends faster than the node computes is slowed by
	// gRPC flow control, not buffered.
	Window int
	// MaxCalls is the number of calls served at once; one more fails with
	// ErrOverCapacity. Zero means 256.
	MaxCalls int
	// QueueDepth is the capacity of each lane's task queue (native,
	// workers). Zero means 4096.
	QueueDepth int
	// Mem allocates result arrays. Nil means memory.DefaultAllocator.
	Mem memory.Allocator
	// OnRoom, when set, is called as a task ends in a lane that then has a
	// free slot and nothing queued: the node tells peers with tasks
	// waiting that it has room (RoomFan), sooner than its next load
	// report. It is called on the lane's goroutine and must not block.
	OnRoom func(Lane)
}

func (c *Config) validate() error {
	if c.Executors < 0 || c.Workers < 0 || c.Window < 0 || c.MaxCalls < 0 || c.QueueDepth < 0 || c.SpillBacklog < 0 {
		return errors.New("scheduler: negative limit in Config")
	}
	if c.Executors == 0 {
		c.Executors = runtime.GOMAXPROCS(0)
	}
	if c.Window == 0 {
		c.Window = 2
	}
	if c.MaxCalls == 0 {
		c.MaxCalls = 256
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = 4096
	}
	if c.Placement == nil {
		c.Placement = Local{}
	}
	if c.Mem == nil {
		c.Mem = memory.DefaultAllocator
	}
	if c.Executors > 1<<16 || c.Workers > 1<<16 {
		return fmt.Errorf("scheduler: %d executors and %d workers is more than makes sense", c.Executors, c.Workers)
	}
	return nil
}
