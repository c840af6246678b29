// Lanes, costs and placement in the shell: Python functions run against
// the workers, not the executors; their measured work feeds their cost; a
// placement that picks a peer is refused.
package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// costedFunc is a testFunc that measures its work as a Python function
// does: workPerRow for each row.
type costedFunc struct {
	testFunc
	workers    int
	workPerRow time.Duration
}

func (f costedFunc) ID() string       { return "id-" + f.name }
func (f costedFunc) Parallelism() int { return f.workers }

func (f costedFunc) EvalWork(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, time.Duration, error) {
	col, err := f.Eval(ctx, mem, args)
	return col, f.workPerRow * time.Duration(args[0].Len()), err
}

// TestPythonTasksHoldNoExecutor: with one executor and two workers, two
// Python tasks blocked in their workers leave the executor free for a
// native call.
func TestPythonTasksHoldNoExecutor(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, Workers: 2})
	running, release := make(chan struct{}, 2), make(chan struct{})
	fn := costedFunc{workers: 2, workPerRow: time.Microsecond, testFunc: blockingFunc("slow", running, release)}
	wait := f.runAsync(context.Background(), fn, CallOptions{RowsPerTask: 5}, newSliceSource(f.batches([]int{10}, 0)), func(arrow.RecordBatch, BatchInfo) error { return nil })
	for i := 0; i < 2; i++ {
		select {
		case <-running:
		case <-time.After(hang):
			t.Fatal("the two Python tasks did not run at once")
		}
	}
	in := f.batches([]int{100}, 0)
	out, err := f.run(context.Background(), identityFunc(t), CallOptions{}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "identity", out, in)
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if c := f.sched.Cost(fn.ID()); c.Tasks != 2 || c.AvgPerRowNs(5) != 1000 {
		t.Fatalf("cost %+v after two tasks of 5 rows at 1 us a row", c)
	}
}

// blockingFunc copies its input once release is closed, saying on running
// when it starts.
func blockingFunc(name string, running chan<- struct{}, release <-chan struct{}) testFunc {
	return testFunc{name: name, eval: func(ctx context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		running <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return copyInt64(mem, x), nil
	}}
}

type peerPlacement struct{}

func (peerPlacement) Place(Snapshot, TaskInfo) Decision { return Decision{Peer: "n2"} }

func TestPlacementOnAPeerIsRefused(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, Placement: peerPlacement{}})
	_, err := f.run(context.Background(), identityFunc(t), CallOptions{}, newSliceSource(f.batches([]int{10}, 0)))
	if !errors.Is(err, ErrNoPeers) {
		t.Fatalf("got %v, want ErrNoPeers", err)
	}
}

// TestAWholeFunctionsBatchIsOneTask: identity (udf.Whole) runs a batch
// as one task, where cutting it would only add the copy that joins the
// tasks; a task size the call asks for still cuts it.
func TestAWholeFunctionsBatchIsOneTask(t *testing.T) {
	f := newFixture(t, Config{Executors: 4})
	in := f.batches([]int{100_000}, 0)
	out, err := f.run(context.Background(), identityFunc(t), CallOptions{}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "identity", out, in)
	if st := f.sched.Stats(); st.Tasks != 1 {
		t.Fatalf("%d tasks for one batch of identity, want 1", st.Tasks)
	}
	if _, err := f.run(context.Background(), identityFunc(t), CallOptions{RowsPerTask: 10_000}, newSliceSource(f.batches([]int{100_000}, 0))); err != nil {
		t.Fatal(err)
	}
	if st := f.sched.Stats(); st.Tasks != 1+10 {
		t.Fatalf("%d tasks in all, want 1 and then 10 of 10,000 rows", st.Tasks)
	}
}
