// Tests of the concurrent shell: Scheduler.Run on real executors, in-memory
// Sources, checked Arrow memory.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
)

func TestRunIdentity(t *testing.T) {
	many := make([]int, 200)
	for i := range many {
		many[i] = (i * 37) % 97
	}
	cases := []struct {
		name        string
		sizes       []int
		rowsPerTask int64
	}{
		{"one row", []int{1}, 0},
		{"zero rows", []int{0}, 0},
		{"empty batches between", []int{0, 3, 0, 0, 5, 0}, 2},
		{"no batches", nil, 0},
		{"rows not divisible by task size", []int{1003}, 100},
		{"task size larger than batch", []int{7}, 100},
		{"default task size", []int{3*MinTaskRows + 5}, 0},
		{"many batches", many, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{Executors: 4})
			in := f.batches(tc.sizes, 5)
			src := newSliceSource(in)
			out, err := f.run(context.Background(), identityFunc(t), CallOptions{RowsPerTask: tc.rowsPerTask}, src)
			if err != nil {
				t.Fatal(err)
			}
			checkClosed(t, src.closed)
			checkSame(t, "identity", out, in)
		})
	}
}

// TestRunReordersOutOfOrderTasks makes 100 tasks over several batches finish
// in a pseudo-random order; the output must still be the input, in order.
func TestRunReordersOutOfOrderTasks(t *testing.T) {
	f := newFixture(t, Config{Executors: 8, Window: 4})
	var mu sync.Mutex
	var finished []int64 // first value of each task, in finishing order
	fn := testFunc{name: "sleepy", eval: func(ctx context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		first := x.Value(0)
		time.Sleep(time.Duration(uint64(first)*2654435761%1500) * time.Microsecond)
		mu.Lock()
		finished = append(finished, first)
		mu.Unlock()
		return copyInt64(mem, x), nil
	}}
	in := f.batches([]int{200, 200, 200, 200, 200}, 0)
	src := newSliceSource(in)
	out, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 10}, src)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "sleepy", out, in)
	if len(finished) != 100 {
		t.Fatalf("%d tasks ran, want 100", len(finished))
	}
	inversions := 0
	for i := 1; i < len(finished); i++ {
		if finished[i] < finished[i-1] {
			inversions++
		}
	}
	t.Logf("%d of 99 adjacent task completions were out of order", inversions)
}

// TestRunReordersReversedTasks is the deterministic twin of the test above:
// each task of a batch waits for the next one to finish, so the tasks
// complete in exactly reverse order.
func TestRunReordersReversedTasks(t *testing.T) {
	const tasks = 50
	f := newFixture(t, Config{Executors: tasks})
	done := make([]chan struct{}, tasks+1)
	for i := range done {
		done[i] = make(chan struct{})
	}
	close(done[tasks])
	var order []int
	var mu sync.Mutex
	fn := testFunc{name: "reversed", eval: func(ctx context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		task := int(x.Value(0)) / 10
		select {
		case <-done[task+1]:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		order = append(order, task)
		mu.Unlock()
		close(done[task])
		return copyInt64(mem, x), nil
	}}
	in := f.batches([]int{tasks * 10}, 0)
	out, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 10}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "reversed", out, in)
	if !sort.SliceIsSorted(order, func(i, j int) bool { return order[i] > order[j] }) || len(order) != tasks {
		t.Fatalf("tasks finished in order %v, want %d tasks in reverse", order, tasks)
	}
}

var errBoom = errors.New("boom")

// failOn returns a function that fails on the rows for which bad is true.
func failOn(bad func(int64) bool) testFunc {
	return testFunc{name: "fail", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		for i := 0; i < x.Len(); i++ {
			if x.IsValid(i) && bad(x.Value(i)) {
				return nil, fmt.Errorf("%w at value %d", errBoom, x.Value(i))
			}
		}
		return copyInt64(mem, x), nil
	}}
}

func TestRunTaskError(t *testing.T) {
	f := newFixture(t, Config{Executors: 4})
	in := f.batches([]int{1000, 1000, 1000}, 0)
	src := newSliceSource(in)
	_, err := f.run(context.Background(), failOn(func(v int64) bool { return v == 2537 }), CallOptions{RowsPerTask: 100}, src)
	if !errors.Is(err, errBoom) {
		t.Fatalf("Run returned %v, want an error wrapping errBoom", err)
	}
	var te *TaskError
	if !errors.As(err, &te) {
		t.Fatalf("Run returned %T, want a *TaskError", err)
	}
	want := TaskError{Func: "fail", Batch: 2, Rows: Range{Offset: 500, Len: 100}}
	if te.Func != want.Func || te.Batch != want.Batch || te.Rows != want.Rows {
		t.Fatalf("TaskError{%s, batch %d, rows %+v}, want {%s, batch %d, rows %+v}",
			te.Func, te.Batch, te.Rows, want.Func, want.Batch, want.Rows)
	}
	checkClosed(t, src.closed)
	if st := f.sched.Stats(); st.CallsFailed != 1 {
		t.Fatalf("calls_failed = %d, want 1", st.CallsFailed)
	}
}

// TestRunOnErrorNull: failing rows become null with their message in the
// error column; every other row is intact.
func TestRunOnErrorNull(t *testing.T) {
	f := newFixture(t, Config{Executors: 4})
	bad := func(v int64) bool { return v%7 == 3 }
	in := f.batches([]int{1, 0, 50, 1003}, 11)
	out, err := f.run(context.Background(), failOn(bad), CallOptions{RowsPerTask: 100, OnError: OnErrorNull}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d output batches, want %d", len(out), len(in))
	}
	nulled := int64(0)
	for bi, rec := range out {
		if rec.NumCols() != 2 || rec.Schema().Field(0).Name != "fail" || rec.Schema().Field(1).Name != ErrorColumn {
			t.Fatalf("batch %d: schema %s, want fail, %s", bi, rec.Schema(), ErrorColumn)
		}
		x := in[bi].Column(0).(*array.Int64)
		got := rec.Column(0).(*array.Int64)
		msgs := rec.Column(1).(*array.String)
		if got.Len() != x.Len() || msgs.Len() != x.Len() {
			t.Fatalf("batch %d: %d rows and %d messages, want %d", bi, got.Len(), msgs.Len(), x.Len())
		}
		for i := 0; i < x.Len(); i++ {
			switch {
			case x.IsValid(i) && bad(x.Value(i)):
				nulled++
				want := fmt.Errorf("%w at value %d", errBoom, x.Value(i)).Error()
				if got.IsValid(i) || msgs.IsNull(i) || msgs.Value(i) != want {
					t.Fatalf("batch %d row %d (value %d): got %s with message %q, want null with %q",
						bi, i, x.Value(i), got.ValueStr(i), msgs.ValueStr(i), want)
				}
			case msgs.IsValid(i):
				t.Fatalf("batch %d row %d: message %q on a row that succeeded", bi, i, msgs.Value(i))
			case got.IsNull(i) != x.IsNull(i) || (x.IsValid(i) && got.Value(i) != x.Value(i)):
				t.Fatalf("batch %d row %d: got %s, want %s", bi, i, got.ValueStr(i), x.ValueStr(i))
			}
		}
	}
	if nulled == 0 {
		t.Fatal("no row failed: the test checks nothing")
	}
	if st := f.sched.Stats(); st.NulledRows != nulled {
		t.Fatalf("nulled_rows = %d, want %d", st.NulledRows, nulled)
	}
}

func TestRunBadResult(t *testing.T) {
	wrongLen := testFunc{name: "long", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(make([]int64, x.Len()+1), nil)
		return b.NewArray(), nil
	}}
	wrongType := testFunc{name: "float", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		b.AppendValues(make([]float64, x.Len()), nil)
		return b.NewArray(), nil
	}}
	for _, fn := range []testFunc{wrongLen, wrongType} {
		for _, onErr := range []OnError{OnErrorRaise, OnErrorNull} {
			t.Run(fn.name+"/"+onErr.String(), func(t *testing.T) {
				f := newFixture(t, Config{Executors: 2})
				src := newSliceSource(f.batches([]int{10, 25}, 0))
				_, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 10, OnError: onErr}, src)
				if !errors.Is(err, ErrBadResult) {
					t.Fatalf("Run returned %v, want ErrBadResult", err)
				}
				checkClosed(t, src.closed)
			})
		}
	}
}

// TestRunCancelWhileSourceBlocks cancels a call whose Source is blocked in
// Next after one batch went through.
func TestRunCancelWhileSourceBlocks(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	src := newChanSource()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emitted := make(chan int64, 1)
	wait := f.runAsync(ctx, identityFunc(t), CallOptions{}, src, func(rec arrow.RecordBatch, _ BatchInfo) error {
		emitted <- rec.NumRows()
		return nil
	})
	src.in <- f.batch(0, 10, 0)
	select {
	case n := <-emitted:
		if n != 10 {
			t.Fatalf("emitted %d rows, want 10", n)
		}
	case <-time.After(hang):
		t.Fatal("the first batch was never emitted")
	}
	cancel() // the reader is now blocked in Next
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	close(src.stop) // what a stream does when its call ends
	checkClosed(t, src.closed)
	f.finish()
	goleak.VerifyNone(t)
}

// TestRunCancelWhileTaskRuns cancels a call while its task is running: Run
// waits for the task and returns context.Canceled.
func TestRunCancelWhileTaskRuns(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	running := make(chan struct{})
	var once sync.Once
	fn := testFunc{name: "block", eval: func(ctx context.Context, _ memory.Allocator, _ *array.Int64) (arrow.Array, error) {
		once.Do(func() { close(running) })
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := newSliceSource(f.batches([]int{100, 100, 100}, 0))
	wait := f.runAsync(ctx, fn, CallOptions{RowsPerTask: 10}, src, func(arrow.RecordBatch, BatchInfo) error {
		return errors.New("nothing may be emitted")
	})
	select {
	case <-running:
	case <-time.After(hang):
		t.Fatal("the task never started")
	}
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	checkClosed(t, src.closed)
	f.finish()
	goleak.VerifyNone(t)
}

func TestRunTimeout(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	fn := testFunc{name: "block", eval: func(ctx context.Context, _ memory.Allocator, _ *array.Int64) (arrow.Array, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	src := newSliceSource(f.batches([]int{10}, 0))
	_, err := f.run(context.Background(), fn, CallOptions{Timeout: 20 * time.Millisecond}, src)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v, want context.DeadlineExceeded", err)
	}
	checkClosed(t, src.closed)
}

func TestRunOverCapacity(t *testing.T) {
	f := newFixture(t, Config{Executors: 2, MaxCalls: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := newChanSource()
	wait := f.runAsync(ctx, identityFunc(t), CallOptions{}, first, func(arrow.RecordBatch, BatchInfo) error { return nil })
	select {
	case <-first.nexting: // the first call is admitted
	case <-time.After(hang):
		t.Fatal("the first call never read its input")
	}
	second := newSliceSource(f.batches([]int{5}, 0))
	if _, err := f.run(context.Background(), identityFunc(t), CallOptions{}, second); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("second call returned %v, want ErrOverCapacity", err)
	}
	checkClosed(t, second.closed) // a refused call still closes its source
	close(first.in)
	if err := wait(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// The slot is free again.
	third := newSliceSource(f.batches([]int{5}, 0))
	if _, err := f.run(context.Background(), identityFunc(t), CallOptions{}, third); err != nil {
		t.Fatalf("third call: %v", err)
	}
}

func TestRunAfterClose(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	f.sched.Close()
	src := newSliceSource(f.batches([]int{5}, 0))
	if _, err := f.run(context.Background(), identityFunc(t), CallOptions{}, src); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close returned %v, want ErrClosed", err)
	}
	checkClosed(t, src.closed)
}
