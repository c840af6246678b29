// Tests of the concurrent shell: Scheduler.Run on real executors, in-memory
// Sources, checked Arrow memory.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/udf"
)

// hang bounds every wait in these tests: reaching it means a hang, and the
// test fails instead of blocking the suite. It never decides a pass.
const hang = 20 * time.Second

// inSchema is the input of every call here: one nullable int64 argument.
var inSchema = arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)

// fixture is a real Scheduler whose Arrow memory, inputs and results
// included, comes from one checked allocator.
type fixture struct {
	t     *testing.T
	mem   *memory.CheckedAllocator
	sched *Scheduler
	held  []arrow.RecordBatch // inputs and outputs the test keeps
	done  bool
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, mem: memory.NewCheckedAllocator(memory.NewGoAllocator())}
	cfg.Mem = f.mem
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f.sched = s
	t.Cleanup(f.finish)
	return f
}

// finish closes the scheduler, releases what the test held and checks that
// no Arrow memory is left. Tests that check for leaked goroutines call it
// themselves; otherwise it runs at cleanup.
func (f *fixture) finish() {
	if f.done {
		return
	}
	f.done = true
	f.sched.Close()
	if st := f.sched.Stats(); st.CallsActive != 0 || st.TasksActive != 0 {
		f.t.Errorf("after Close: %d calls and %d tasks still active", st.CallsActive, st.TasksActive)
	}
	for _, r := range f.held {
		r.Release()
	}
	f.held = nil
	f.mem.AssertSize(f.t, 0)
}

// batch builds an int64 batch of n rows holding start, start+1, ...; with
// nullEvery > 0 every nullEvery-th row is null. The fixture releases it.
func (f *fixture) batch(start int64, n, nullEvery int) arrow.RecordBatch {
	b := array.NewInt64Builder(f.mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		if nullEvery > 0 && i%nullEvery == nullEvery-1 {
			b.AppendNull()
			continue
		}
		b.Append(start + int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(inSchema, []arrow.Array{col}, int64(n))
	f.held = append(f.held, rec)
	return rec
}

// batches builds one batch per size, numbering rows across batches.
func (f *fixture) batches(sizes []int, nullEvery int) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	var start int64
	for _, n := range sizes {
		out = append(out, f.batch(start, n, nullEvery))
		start += int64(n)
	}
	return out
}

// bind binds fn to inSchema or fails the test.
func (f *fixture) bind(fn udf.Func, opts CallOptions) *Bound {
	f.t.Helper()
	b, err := Bind(fn, inSchema, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// run calls fn over src and returns the output batches (held by the fixture).
func (f *fixture) run(ctx context.Context, fn udf.Func, opts CallOptions, src Source) ([]arrow.RecordBatch, error) {
	f.t.Helper()
	var out []arrow.RecordBatch
	err := f.sched.Run(ctx, f.bind(fn, opts), src, func(rec arrow.RecordBatch, _ BatchInfo) error {
		rec.Retain()
		out = append(out, rec)
		f.held = append(f.held, rec)
		return nil
	})
	return out, err
}

// sliceSource yields in-memory batches, then io.EOF.
type sliceSource struct {
	recs   []arrow.RecordBatch
	next   int
	closed chan struct{} // closed by Close; a second Close panics
}

func newSliceSource(recs []arrow.RecordBatch) *sliceSource {
	return &sliceSource{recs: recs, closed: make(chan struct{})}
}

func (s *sliceSource) Next() (arrow.RecordBatch, error) {
	if s.next == len(s.recs) {
		return nil, io.EOF
	}
	rec := s.recs[s.next]
	s.next++
	rec.Retain() // Run releases what Next returns
	return rec, nil
}

func (s *sliceSource) Close() { close(s.closed) }

// checkClosed fails the test unless Run closed src.
func checkClosed(t *testing.T, closed <-chan struct{}) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(hang):
		t.Fatal("the source was never closed")
	}
}

// testFunc is an int64 -> int64 function whose body the test supplies.
type testFunc struct {
	name string
	eval func(ctx context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error)
}

func (f testFunc) Name() string { return f.name }

func (f testFunc) Signature() udf.Signature {
	return udf.Signature{
		Args:   []arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}},
		Result: arrow.Field{Name: f.name, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}
}

func (f testFunc) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if len(args) != 1 || !arrow.TypeEqual(args[0], arrow.PrimitiveTypes.Int64) {
		return nil, udf.Invalidf("%s takes one int64", f.name)
	}
	return arrow.PrimitiveTypes.Int64, nil
}

func (f testFunc) Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	return f.eval(ctx, mem, args[0].(*array.Int64))
}

// copyInt64 returns a new array equal to x, allocated from mem, so that
// results are not slices of the input and their memory is accounted for.
func copyInt64(mem memory.Allocator, x *array.Int64) arrow.Array {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.Reserve(x.Len())
	for i := 0; i < x.Len(); i++ {
		if x.IsNull(i) {
			b.AppendNull()
		} else {
			b.UnsafeAppend(x.Value(i))
		}
	}
	return b.NewArray()
}

// identityFunc returns the built-in identity, zero-copy.
func identityFunc(t *testing.T) udf.Func {
	t.Helper()
	fn, err := udf.NewBuiltinCatalog().Lookup("identity")
	if err != nil {
		t.Fatal(err)
	}
	return fn
}

// checkInt64 fails the test unless got holds exactly want's values and nulls.
func checkInt64(t *testing.T, what string, got, want arrow.Array) {
	t.Helper()
	g, ok := got.(*array.Int64)
	if !ok {
		t.Fatalf("%s: got a %s column, want int64", what, got.DataType())
	}
	w := want.(*array.Int64)
	if g.Len() != w.Len() {
		t.Fatalf("%s: %d rows, want %d", what, g.Len(), w.Len())
	}
	for i := 0; i < w.Len(); i++ {
		if g.IsNull(i) != w.IsNull(i) || (w.IsValid(i) && g.Value(i) != w.Value(i)) {
			t.Fatalf("%s: row %d is %v, want %v", what, i, g.ValueStr(i), w.ValueStr(i))
		}
	}
}

// checkSame fails unless out is exactly one batch per input, same values, in order.
func checkSame(t *testing.T, fn string, out, in []arrow.RecordBatch) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("%d output batches for %d input batches", len(out), len(in))
	}
	for i := range in {
		if out[i].NumCols() != 1 || out[i].Schema().Field(0).Name != fn {
			t.Fatalf("batch %d: output schema %s, want one column %q", i, out[i].Schema(), fn)
		}
		if out[i].NumRows() != in[i].NumRows() {
			t.Fatalf("batch %d: %d rows, want %d", i, out[i].NumRows(), in[i].NumRows())
		}
		checkInt64(t, fmt.Sprintf("batch %d", i), out[i].Column(0), in[i].Column(0))
	}
}

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

// chanSource yields the batches sent on in and blocks in Next until one
// arrives; io.EOF once in is closed or stop is.
type chanSource struct {
	in       chan arrow.RecordBatch
	stop     chan struct{}
	closed   chan struct{}
	nextOnce sync.Once
	nexting  chan struct{} // closed at the first Next
}

func newChanSource() *chanSource {
	return &chanSource{in: make(chan arrow.RecordBatch), stop: make(chan struct{}), closed: make(chan struct{}), nexting: make(chan struct{})}
}

func (s *chanSource) Next() (arrow.RecordBatch, error) {
	s.nextOnce.Do(func() { close(s.nexting) })
	select {
	case rec, ok := <-s.in:
		if !ok {
			return nil, io.EOF
		}
		rec.Retain()
		return rec, nil
	case <-s.stop:
		return nil, io.EOF
	}
}

func (s *chanSource) Close() { close(s.closed) }

// runAsync runs fn over src on its own goroutine; wait returns Run's error.
func (f *fixture) runAsync(ctx context.Context, fn udf.Func, opts CallOptions, src Source, emit Emit) (wait func() error) {
	b := f.bind(fn, opts)
	errc := make(chan error, 1)
	go func() { errc <- f.sched.Run(ctx, b, src, emit) }()
	return func() error {
		f.t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(hang):
			f.t.Fatal("Run did not return")
			return nil
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

// countingSource counts the batches pulled ahead of emission.
type countingSource struct {
	*sliceSource
	pulled, emitted atomic.Int64
	maxAhead        atomic.Int64
	full            chan struct{} // closed when pulled-emitted first reaches fullAt
	fullAt          int64
	fullOnce        sync.Once
}

func (s *countingSource) Next() (arrow.RecordBatch, error) {
	rec, err := s.sliceSource.Next()
	if err != nil {
		return nil, err
	}
	ahead := s.pulled.Add(1) - s.emitted.Load()
	for {
		m := s.maxAhead.Load()
		if ahead <= m || s.maxAhead.CompareAndSwap(m, ahead) {
			break
		}
	}
	if ahead >= s.fullAt {
		s.fullOnce.Do(func() { close(s.full) })
	}
	return rec, nil
}

// TestRunWindow: a call holds at most Window batches, plus the one the
// reader has in hand, however slow its tasks are.
func TestRunWindow(t *testing.T) {
	for _, window := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) {
			f := newFixture(t, Config{Executors: 4, Window: window})
			gate := make(chan struct{})
			fn := testFunc{name: "gated", eval: func(ctx context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
				select {
				case <-gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return copyInt64(mem, x), nil
			}}
			sizes := make([]int, 3*window+3)
			for i := range sizes {
				sizes[i] = 10
			}
			in := f.batches(sizes, 0)
			src := &countingSource{sliceSource: newSliceSource(in), full: make(chan struct{}), fullAt: int64(window + 1)}
			var out []arrow.RecordBatch
			wait := f.runAsync(context.Background(), fn, CallOptions{RowsPerTask: 5}, src, func(rec arrow.RecordBatch, _ BatchInfo) error {
				src.emitted.Add(1)
				rec.Retain()
				out = append(out, rec)
				return nil
			})
			select {
			case <-src.full: // the window is full and the reader holds one more
			case <-time.After(hang):
				t.Fatalf("the reader never got %d batches ahead", window+1)
			}
			close(gate)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			f.held = append(f.held, out...)
			checkSame(t, "gated", out, in)
			if m := src.maxAhead.Load(); m > int64(window+1) {
				t.Fatalf("%d batches pulled ahead of emission, want at most Window+1 = %d", m, window+1)
			}
		})
	}
}

// TestRunConcurrentCalls runs several calls at once on one pool; each gets
// its own input back, in order.
func TestRunConcurrentCalls(t *testing.T) {
	f := newFixture(t, Config{Executors: 4})
	fn := testFunc{name: "copy", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		return copyInt64(mem, x), nil
	}}
	const calls = 8
	rng := rand.New(rand.NewSource(1))
	ins := make([][]arrow.RecordBatch, calls)
	outs := make([][]arrow.RecordBatch, calls)
	waits := make([]func() error, calls)
	for c := range ins {
		sizes := make([]int, 10)
		for i := range sizes {
			sizes[i] = rng.Intn(300)
		}
		ins[c] = f.batches(sizes, 3)
	}
	for c := range ins {
		c := c
		waits[c] = f.runAsync(context.Background(), fn, CallOptions{RowsPerTask: 7}, newSliceSource(ins[c]), func(rec arrow.RecordBatch, _ BatchInfo) error {
			rec.Retain()
			outs[c] = append(outs[c], rec)
			return nil
		})
	}
	for c := range waits {
		if err := waits[c](); err != nil {
			t.Fatalf("call %d: %v", c, err)
		}
		f.held = append(f.held, outs[c]...)
		checkSame(t, "copy", outs[c], ins[c])
	}
}

// TestSplitBoundsTasks: however small the task size asked, a batch is cut
// into at most MaxTasksPerBatch tasks that still cover it exactly.
func TestSplitBoundsTasks(t *testing.T) {
	for _, tc := range []struct{ rows, per, wantPer int64 }{
		{MaxTasksPerBatch, 1, 1},
		{2 * MaxTasksPerBatch, 1, 2},
		{MaxTasksPerBatch + 1, 1, 2},
		{1 << 40, 1, 1 << 24},
		{1<<63 - 1, 1, 1 << 47},
	} {
		ranges := Split(tc.rows, tc.per)
		if len(ranges) > MaxTasksPerBatch || ranges[0].Len != tc.wantPer {
			t.Fatalf("Split(%d, %d): %d ranges of %d rows, want at most %d of %d", tc.rows, tc.per, len(ranges), ranges[0].Len, MaxTasksPerBatch, tc.wantPer)
		}
		end := int64(0)
		for _, r := range ranges {
			if r.Offset != end || r.Len <= 0 {
				t.Fatalf("Split(%d, %d): range %+v after row %d", tc.rows, tc.per, r, end)
			}
			end += r.Len
		}
		if end != tc.rows {
			t.Fatalf("Split(%d, %d) covers %d rows", tc.rows, tc.per, end)
		}
	}
}

// TestRunHugeNullBatch: a batch of null columns carries no buffers, so a
// client can claim 2^40 rows in a few bytes; with one row per task asked,
// the call still runs in a bounded number of tasks (one Range per row
// would exhaust memory and crash the process).
func TestRunHugeNullBatch(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	const rows = 1 << 40
	schema := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.Null, Nullable: true}}, nil)
	col := array.NewNull(rows)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, rows)
	col.Release()
	f.held = append(f.held, rec)
	b, err := Bind(identityFunc(t), schema, CallOptions{RowsPerTask: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	err = f.sched.Run(context.Background(), b, newSliceSource([]arrow.RecordBatch{rec}), func(out arrow.RecordBatch, _ BatchInfo) error {
		got += out.NumRows()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != rows {
		t.Fatalf("%d rows out, want %d", got, rows)
	}
	if n := f.sched.Stats().Tasks; n > MaxTasksPerBatch {
		t.Fatalf("%d tasks, want at most %d", n, MaxTasksPerBatch)
	}
}
