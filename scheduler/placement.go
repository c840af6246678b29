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
// needs, how many tasks that lane runs at once, how many run now and how
// many wait in its queue, and the peers' last gossiped views.
type Snapshot struct {
	Lane    Lane
	Slots   int
	Running int
	Queued  int
	// Peers are the live peers that could run the task, in a stable order
	// (by name); empty on a node alone.
	Peers []PeerView
	// Busy is how many nodes of the cluster (this one included) had tasks
	// waiting at their last report: they share the peers' free slots.
	// Zero counts as one.
	Busy int
	// Rand is a random number drawn by the caller for this decision: the
	// decision stays a pure function of its arguments, and tests fix it.
	Rand uint64
}

// PeerView is one peer as this node last heard of it (gossip, refreshed
// every 100 ms at most, so it may be stale).
type PeerView struct {
	Name    string // the peer's node name
	Slots   int    // tasks of the lane it runs at once
	Running int    // of those, running when it reported
	Queued  int    // tasks waiting in its queue when it reported
	// Inflight is the tasks this node has sent it and not yet had back;
	// InflightAtReport is what it was when the peer reported. The peer's
	// load now is its report less this node's share then, plus this
	// node's share now: exact for this node's own tasks, stale only for
	// other origins'.
	Inflight         int
	InflightAtReport int
	// Report names the peer's load report (a new number for each): the
	// scheduler fills InflightAtReport from its count when it first sees
	// a report.
	Report uint64
	// Warm: the peer has the task's function loaded.
	Warm bool
	// MoveNsPerByte is the measured cost of sending it a byte and having
	// the result back; zero when not measured yet.
	MoveNsPerByte float64
	// RTTNs is the measured round trip of a call to it; zero when unknown.
	RTTNs int64
}

// TaskInfo is the task to place.
type TaskInfo struct {
	Func  string // the function's name
	Rows  int64
	Bytes int64 // its input's size in bytes
	// CostNs is the estimated time to run it (the function's cost model at
	// Rows); zero when unknown.
	CostNs int64
	// Spilled: the task came from a peer. It is never forwarded again: it
	// runs here or is refused.
	Spilled bool
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
