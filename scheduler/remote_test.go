// Tasks on peers through a fake Remote: results come back out of order, some
// peers fail or refuse tasks, and every row still comes back exactly once.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// spreadPlacement sends every task to a peer, chosen by the snapshot's Rand.
type spreadPlacement struct{}

func (spreadPlacement) Place(s Snapshot, t TaskInfo) Decision {
	if len(s.Peers) == 0 || t.Spilled {
		return Decision{}
	}
	return Decision{Peer: s.Peers[s.Rand%uint64(len(s.Peers))].Name}
}

// peerOutcome is what the fake peer does with a task, by its first value.
type peerOutcome int

const (
	peerOK peerOutcome = iota
	peerLost
	peerRefuses
	peerFuncFails
)

// fakeRemote runs tasks "on peers" in-process after a random delay, doing
// what outcome says for each task's first value.
type fakeRemote struct {
	mem     memory.Allocator
	peers   []PeerView
	outcome func(first int64) peerOutcome

	rows      atomic.Int64 // rows evaluated successfully
	mu        sync.Mutex
	running   map[string]int
	maxByPeer map[string]int
}

func newFakeRemote(mem memory.Allocator, slots int, outcome func(int64) peerOutcome) *fakeRemote {
	return &fakeRemote{mem: mem, outcome: outcome, running: map[string]int{}, maxByPeer: map[string]int{},
		peers: []PeerView{{Name: "p1", Slots: slots}, {Name: "p2", Slots: slots}}}
}

func (r *fakeRemote) Peers(Lane) []PeerView { return append([]PeerView(nil), r.peers...) }

func (r *fakeRemote) Run(ctx context.Context, peer string, t RemoteTask) (RemoteResult, error) {
	r.mu.Lock()
	r.running[peer]++
	r.maxByPeer[peer] = max(r.maxByPeer[peer], r.running[peer])
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running[peer]--
		r.mu.Unlock()
	}()
	select {
	case <-time.After(time.Duration(rand.IntN(2000)) * time.Microsecond):
	case <-ctx.Done():
		return RemoteResult{}, ctx.Err()
	}
	x := t.Rec.Column(0).(*array.Int64)
	switch r.outcome(x.Value(0)) {
	case peerLost:
		return RemoteResult{}, errors.New("stream broken")
	case peerRefuses:
		return RemoteResult{}, fmt.Errorf("%w: busy", ErrPeerRefused)
	case peerFuncFails:
		return RemoteResult{}, &PeerFuncError{Msg: "ValueError: bad row", Attempts: 1}
	}
	r.rows.Add(int64(x.Len()))
	return RemoteResult{Col: copyInt64(r.mem, x), Work: time.Millisecond}, nil
}

// countingCopy copies its input here, counting the rows.
func countingCopy(rows *atomic.Int64) testFunc {
	return testFunc{name: "copy", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		rows.Add(int64(x.Len()))
		return copyInt64(mem, x), nil
	}}
}

func TestTasksOnPeersComeBackInOrder(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	remote := newFakeRemote(f.mem, 4, func(int64) peerOutcome { return peerOK })
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, spreadPlacement{}
	var local atomic.Int64
	in := f.batches([]int{1000, 7, 500, 1, 999}, 5)
	out, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 20}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "copy", out, in)
	if got := local.Load() + remote.rows.Load(); got != 2507 {
		t.Fatalf("%d rows evaluated, want each of 2507 once", got)
	}
	st := f.sched.Stats()
	if st.SpilledOut == 0 || st.PeerFailures != 0 {
		t.Fatalf("stats %+v: want tasks spilled out and no peer failure", st)
	}
	for p, n := range remote.maxByPeer {
		if n > PeerLimit*4 {
			t.Errorf("peer %s ran %d tasks at once, more than %d per slot", p, n, PeerLimit)
		}
	}
}

func TestTasksAPeerFailsRunHereOnce(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	remote := newFakeRemote(f.mem, 2, func(first int64) peerOutcome {
		return [...]peerOutcome{peerOK, peerLost, peerRefuses}[(first/10)%3]
	})
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, spreadPlacement{}
	var local atomic.Int64
	in := f.batches([]int{300, 300}, 0)
	out, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 10, Retries: 1}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "copy", out, in)
	if got := local.Load() + remote.rows.Load(); got != 600 {
		t.Fatalf("%d rows evaluated successfully, want each of 600 once", got)
	}
	st := f.sched.Stats()
	if st.PeerFailures == 0 || st.PeerRefusals == 0 || st.Retries != st.PeerFailures {
		t.Fatalf("stats %+v: want peer failures, each a retry, and refusals (not retries)", st)
	}
}

func TestALostPeerCountsAgainstRetries(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	remote := newFakeRemote(f.mem, 2, func(int64) peerOutcome { return peerLost })
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, spreadPlacement{}
	var local atomic.Int64
	_, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 10, Retries: 0}, newSliceSource(f.batches([]int{30}, 0)))
	var te *TaskError
	if !errors.As(err, &te) || !errors.Is(err, ErrPeerLost) {
		t.Fatalf("got %v, want a TaskError wrapping ErrPeerLost", err)
	}
}

func TestAFunctionFailingOnAPeerFailsTheCall(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	remote := newFakeRemote(f.mem, 2, func(first int64) peerOutcome {
		if first == 20 {
			return peerFuncFails
		}
		return peerOK
	})
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, spreadPlacement{}
	var local atomic.Int64
	_, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 10, Retries: 3}, newSliceSource(f.batches([]int{40}, 0)))
	var te *TaskError
	var pf *PeerFuncError
	if !errors.As(err, &te) || !errors.As(err, &pf) {
		t.Fatalf("got %v, want a TaskError wrapping the peer's PeerFuncError", err)
	}
	if te.Rows != (Range{Offset: 20, Len: 10}) || te.Func != "copy" || te.Batch != 0 {
		t.Fatalf("TaskError %+v: want copy, batch 0, rows [20, 30)", te)
	}
	if local.Load() != 0 {
		t.Fatalf("%d rows ran here: a function's failure is never re-run", local.Load())
	}
}

func TestASpilledCallIsNeverForwarded(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	remote := newFakeRemote(f.mem, 2, func(int64) peerOutcome { return peerOK })
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, peerPlacement{}
	var local atomic.Int64
	in := f.batches([]int{50}, 0)
	out, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 50, Spilled: true}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "copy", out, in)
	if st := f.sched.Stats(); local.Load() != 50 || st.SpilledIn != 1 || st.SpilledOut != 0 {
		t.Fatalf("%d rows here, stats %+v: want all 50 here, one task spilled in", local.Load(), st)
	}
}

func TestASpilledCallIsRefusedWhenTheQueueIsFull(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, SpillBacklog: 2})
	running, release := make(chan struct{}, 8), make(chan struct{})
	src := newSliceSource(f.batches([]int{4}, 0))
	wait := f.runAsync(context.Background(), blockingFunc("block", running, release), CallOptions{RowsPerTask: 1}, src,
		func(arrow.RecordBatch, BatchInfo) error { return nil })
	<-running // one task runs, three wait in the queue
	_, err := f.run(context.Background(), identityFunc(t), CallOptions{Spilled: true}, newSliceSource(f.batches([]int{5}, 0)))
	if !errors.Is(err, ErrSpillBusy) || !errors.Is(err, ErrOverCapacity) {
		t.Errorf("got %v, want ErrSpillBusy (over capacity)", err)
	}
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if st := f.sched.Stats(); st.SpillsRefused != 1 {
		t.Fatalf("stats %+v: want one spill refused", st)
	}
}

// onePeer sends every task to p1.
type onePeer struct{}

func (onePeer) Place(s Snapshot, t TaskInfo) Decision { return Decision{Peer: "p1"} }

func TestTasksWaitForABusyPeerWithoutBlockingTheCall(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	remote := newFakeRemote(f.mem, 1, func(int64) peerOutcome { return peerOK })
	f.sched.cfg.Remote, f.sched.cfg.Placement = remote, onePeer{}
	var local atomic.Int64
	in := f.batches([]int{200, 100}, 0)
	out, err := f.run(context.Background(), countingCopy(&local), CallOptions{RowsPerTask: 10}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "copy", out, in)
	if n := remote.maxByPeer["p1"]; n > PeerLimit {
		t.Fatalf("p1 ran %d tasks at once, more than %d for its one slot", n, PeerLimit)
	}
	if local.Load()+remote.rows.Load() != 300 || remote.rows.Load() < 200 {
		t.Fatalf("%d rows here, %d on p1: want 300 once, most of them held for p1", local.Load(), remote.rows.Load())
	}
}
