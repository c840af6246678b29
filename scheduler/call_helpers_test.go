// Fixtures of the shell's tests: a scheduler on a checked allocator, in-memory
// Sources, int64 test functions and the checks on their output.
package scheduler

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
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
	return builtin(t, "identity")
}

// builtin returns the built-in function called name.
func builtin(t *testing.T, name string) udf.Func {
	t.Helper()
	fn, err := udf.NewBuiltinCatalog().Lookup(name)
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
