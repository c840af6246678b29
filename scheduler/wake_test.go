// Wake: a call holding tasks places them again when a peer reports room,
// before any of its results come back.
package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// roomPlacement sends a task to the first peer with a free slot, else here.
type roomPlacement struct{}

func (roomPlacement) Place(s Snapshot, t TaskInfo) Decision {
	if s.Running+s.Queued < s.Slots || t.Spilled {
		return Decision{}
	}
	for _, p := range s.Peers {
		if p.Running+p.Queued+p.Inflight < p.Slots {
			return Decision{Peer: p.Name}
		}
	}
	return Decision{}
}

// viewRemote is one peer whose view the test sets; it runs tasks at once.
type viewRemote struct {
	mem  memory.Allocator
	mu   sync.Mutex
	view PeerView
	ran  chan struct{}
}

func (r *viewRemote) Peers(Lane) []PeerView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return []PeerView{r.view}
}

func (r *viewRemote) set(v PeerView) {
	r.mu.Lock()
	r.view = v
	r.mu.Unlock()
}

func (r *viewRemote) Run(_ context.Context, _ string, t RemoteTask) (RemoteResult, error) {
	r.ran <- struct{}{}
	return RemoteResult{Col: copyInt64(r.mem, t.Rec.Column(0).(*array.Int64))}, nil
}

func TestWakePlacesHeldTasksOnAPeerWithRoom(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, Workers: 1, Placement: roomPlacement{}})
	remote := &viewRemote{mem: f.mem, view: PeerView{Name: "p1", Slots: 1, Running: 1, Report: 1}, ran: make(chan struct{}, 100)}
	f.sched.cfg.Remote = remote
	running, release := make(chan struct{}, 10), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the fixture's: a failed test frees the worker
	fn := costedFunc{workers: 1, workPerRow: time.Microsecond, testFunc: blockingFunc("slow", running, release)}
	in := f.batches([]int{10}, 0)
	var out []arrow.RecordBatch
	wait := f.runAsync(context.Background(), fn, CallOptions{RowsPerTask: 1}, newSliceSource(in), func(rec arrow.RecordBatch, _ BatchInfo) error {
		rec.Retain()
		out = append(out, rec)
		f.held = append(f.held, rec)
		return nil
	})
	// One task runs here, one or two wait for the worker, the others are
	// held: the peer is full.
	<-running
	deadline := time.Now().Add(hang)
	for st := f.sched.Stats(); st.HeldTasks == 0 || st.Tasks+st.HeldTasks != 10; st = f.sched.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want every task dispatched here or held", st)
		}
		time.Sleep(time.Millisecond)
	}
	// The peer frees; no result comes back here, so nothing places the
	// held tasks until a wake.
	remote.set(PeerView{Name: "p1", Slots: 1, Report: 2})
	time.Sleep(20 * time.Millisecond)
	if len(remote.ran) != 0 {
		t.Fatal("a held task moved without a wake or a result")
	}
	f.sched.Wake()
	select {
	case <-remote.ran:
	case <-time.After(hang):
		t.Fatal("Wake did not place a held task on the peer with room")
	}
	free()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	checkSame(t, "slow", out, in)
	if st := f.sched.Stats(); st.HeldTasks != 0 || st.SpilledOut == 0 {
		t.Fatalf("stats %+v: want tasks spilled and none held", st)
	}
}
