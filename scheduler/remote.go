// The seam to peers: what the node's wiring provides so that a task placed
// on a peer runs there, and how the scheduler counts its tasks in flight.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/quiver-udf/quiver/udf"
)

// Remote runs tasks on peers. The node's wiring provides it (the peer
// client lives in package flight, above the scheduler); nil means the node
// is alone. Its methods are called concurrently.
type Remote interface {
	// Peers returns the live peers' views for lane l, in name order. The
	// scheduler fills each view's Inflight with its own count.
	Peers(l Lane) []PeerView
	// Run runs one task of the call's function on peer and returns what a
	// local task returns. Its error is ErrPeerRefused when the peer refused
	// the task (over capacity), a *PeerFuncError when the function itself
	// failed there, and anything else when the peer was lost (the stream
	// broke, the peer is unavailable or declared dead): then the task runs
	// again elsewhere, as often as the call's Retries allow.
	Run(ctx context.Context, peer string, t RemoteTask) (RemoteResult, error)
}

// RemoteTask is one task to run on a peer.
type RemoteTask struct {
	// Func is the call's function: a native one exists on every node, a
	// *udf.PyFunc travels by its Hash.
	Func udf.Func
	// Rec holds the task's rows only, every argument column. It is
	// borrowed: valid until Run returns.
	Rec arrow.RecordBatch
	// OnError and TaskContext are the call's; Table: the call is a table
	// call (the output has the row-index column first).
	OnError     OnError
	TaskContext []byte
	Table       bool
}

// RemoteResult is what a peer returned for a task, as runTask returns it
// for a local one. Col is owned by the caller.
type RemoteResult struct {
	Col arrow.Array
	// Rows: table calls, each output row's input row, relative to the task.
	Rows []int32
	// Errs: OnErrorNull, per-output-row messages ("" for rows that
	// succeeded); nil if none failed.
	Errs []string
	// Work is the time the peer's tasks spent evaluating.
	Work time.Duration
}

var (
	// ErrPeerRefused: the peer refused a spilled task (its queue is full).
	// The task runs elsewhere; it is not a retry.
	ErrPeerRefused = errors.New("scheduler: the peer refused the task")
	// ErrPeerLost: the peer running a task was lost. The task runs
	// elsewhere, counted against the call's retries.
	ErrPeerLost = errors.New("scheduler: lost the peer running the task")
	// ErrSpillBusy: a spilled task came to a node whose lane's queue is
	// full; it runs here or is refused, never forwarded.
	ErrSpillBusy = fmt.Errorf("%w: this node's queue is full and it forwards no spilled task", ErrOverCapacity)
)

// PeerFuncError is the function's own failure on the peer that ran a task:
// the call fails as it would had the task failed here.
type PeerFuncError struct {
	Msg      string // the function's error, as the peer reported it
	Attempts int    // evaluations the peer made
}

func (e *PeerFuncError) Error() string { return e.Msg }

// PeerLimit is how many tasks a node sends a peer at once, per slot the
// peer reports for the task's lane: beyond it tasks run here.
const PeerLimit = 2

// inflight counts the tasks each peer runs for this node now, shared by
// every call. Its mutex guards only the map.
type inflight struct {
	mu sync.Mutex
	n  map[string]int
	// seen is, per peer, the last report placement saw and this node's
	// count when it first saw it.
	seen map[string]seenReport
}

type seenReport struct {
	report   uint64
	inflight int
}

// take counts a task for peer if fewer than limit run there now.
func (f *inflight) take(peer string, limit int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	if f.n[peer] >= limit {
		return false
	}
	f.n[peer]++
	return true
}

func (f *inflight) done(peer string) {
	f.mu.Lock()
	f.n[peer]--
	if f.n[peer] <= 0 {
		delete(f.n, peer)
	}
	f.mu.Unlock()
}

// fill sets each view's Inflight from this node's count, and its
// InflightAtReport from the count when its report was first seen.
func (f *inflight) fill(views []PeerView) {
	f.mu.Lock()
	if f.seen == nil {
		f.seen = map[string]seenReport{}
	}
	for i := range views {
		v := &views[i]
		v.Inflight = f.n[v.Name]
		sr, ok := f.seen[v.Name]
		if !ok || sr.report != v.Report {
			sr = seenReport{report: v.Report, inflight: v.Inflight}
			f.seen[v.Name] = sr
		}
		v.InflightAtReport = sr.inflight
	}
	f.mu.Unlock()
}
