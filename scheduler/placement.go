// Placement: where a task runs, here or on a peer; a pure decision
// consulted once per task as it is dispatched.
package scheduler

// Placement decides where a task runs. Place must be a pure function of
// its arguments (no clocks, goroutines or I/O) and cheap: it is asked once
// per task, on the call's goroutine.
type Placement interface {
	Place(s Snapshot, t TaskInfo) Decision
}

// Snapshot is the node's state as placement sees it: the lane the task
// needs, how many tasks that lane runs at once and how many wait in its
// queue. Peers' views join it when the node has peers.
type Snapshot struct {
	Lane   Lane
	Slots  int
	Queued int
}

// TaskInfo is the task to place.
type TaskInfo struct {
	Func string // the function's name
	Rows int64
}

// Decision is where a task runs: here when Peer is empty, else on the peer
// of that name.
type Decision struct {
	Peer string
}

// Local reports whether the task runs on this node.
func (d Decision) Local() bool { return d.Peer == "" }

// Local is the placement of a node without peers: every task runs here.
type Local struct{}

// Place runs every task here.
func (Local) Place(Snapshot, TaskInfo) Decision { return Decision{} }
