// Groups of small tasks: one job, one EvalParts per group, each task's
// result where it belongs, and a task that fails in a group handled as a
// task of its own.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/udf"
)

// groupedFunc copies its input as a worker would, task by task: a task
// holding a value in fail raises (a part error); with dieOnce set, its
// first group dies whole (udf.ErrWorkerDied). It counts its groups and the
// tasks it ran alone.
type groupedFunc struct {
	costedFunc
	fail    map[int64]bool
	dieOnce bool
	mu      *sync.Mutex
	groups  *[][]int64
	singles *int
}

func newGroupedFunc(name string, fail ...int64) groupedFunc {
	f := groupedFunc{costedFunc: costedFunc{workers: 2, workPerRow: time.Microsecond}, fail: map[int64]bool{},
		mu: new(sync.Mutex), groups: new([][]int64), singles: new(int)}
	for _, v := range fail {
		f.fail[v] = true
	}
	f.testFunc = testFunc{name: name, eval: f.evalOne}
	return f
}

func (f groupedFunc) ID() string   { return "id-" + f.name }
func (f groupedFunc) Groups() bool { return true }

func (f groupedFunc) evalOne(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
	for i := 0; i < x.Len(); i++ {
		if x.IsValid(i) && f.fail[x.Value(i)] {
			return nil, fmt.Errorf("%d is unlucky", x.Value(i))
		}
	}
	return copyInt64(mem, x), nil
}

func (f groupedFunc) EvalWork(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, time.Duration, error) {
	f.mu.Lock()
	*f.singles++
	f.mu.Unlock()
	col, err := f.evalOne(ctx, mem, args[0].(*array.Int64))
	return col, f.workPerRow * time.Duration(args[0].Len()), err
}

func (f groupedFunc) EvalParts(ctx context.Context, mem memory.Allocator, args []arrow.Array, parts []int64) (arrow.Array, []time.Duration, []error, error) {
	f.mu.Lock()
	*f.groups = append(*f.groups, append([]int64(nil), parts...))
	die := f.dieOnce && len(*f.groups) == 1
	f.mu.Unlock()
	if die {
		return nil, nil, nil, fmt.Errorf("%w: killed", udf.ErrWorkerDied)
	}
	x := args[0].(*array.Int64)
	b := array.NewInt64Builder(mem)
	defer b.Release()
	works, errs := make([]time.Duration, len(parts)), make([]error, len(parts))
	var off int64
	for i, n := range parts {
		part := array.NewSlice(x, off, off+n).(*array.Int64)
		col, err := f.evalOne(ctx, mem, part)
		part.Release()
		if err != nil {
			errs[i] = err
			b.AppendNulls(int(n))
		} else {
			c := col.(*array.Int64)
			for k := 0; k < c.Len(); k++ {
				if c.IsNull(k) {
					b.AppendNull()
				} else {
					b.Append(c.Value(k))
				}
			}
			col.Release()
			works[i] = f.workPerRow * time.Duration(n)
		}
		off += n
	}
	return b.NewArray(), works, errs, nil
}

// warm gives fn a measured cost, so that its later batches are grouped.
func (f *fixture) warm(fn udf.Func) {
	f.t.Helper()
	if _, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 1}, newSliceSource(f.batches([]int{8}, 0))); err != nil {
		f.t.Fatal(err)
	}
}

func TestGroupsOfSmallTasks(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, Workers: 2})
	fn := newGroupedFunc("grouped")
	f.warm(fn)
	*fn.groups, *fn.singles = nil, 0
	in := f.batches([]int{1000, 7}, 3)
	out, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 1}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "grouped", out, in)
	tasks := 0
	for _, g := range *fn.groups {
		if len(g) < 2 {
			t.Errorf("a group of %d tasks", len(g))
		}
		tasks += len(g)
	}
	// 1 us a task: each batch's tasks go as two groups per worker at most.
	if len(*fn.groups) == 0 || len(*fn.groups) > 8 || tasks+*fn.singles != 1007 {
		t.Fatalf("%d groups of %d tasks and %d tasks alone, want every one of 1,007 tasks in a few groups", len(*fn.groups), tasks, *fn.singles)
	}
	if st := f.sched.Stats(); st.Tasks < 1007 {
		t.Fatalf("%d tasks counted, want each task of a group counted", st.Tasks)
	}
}

func TestGroupedTaskThatRaises(t *testing.T) {
	for _, tc := range []struct {
		name    string
		onError OnError
	}{{"fail", OnErrorRaise}, {"null", OnErrorNull}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{Executors: 1, Workers: 2})
			fn := newGroupedFunc("unlucky", 13)
			f.warm(fn)
			*fn.groups = nil
			in := f.batches([]int{100}, 0)
			out, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 1, OnError: tc.onError}, newSliceSource(in))
			if len(*fn.groups) == 0 {
				t.Fatal("no groups")
			}
			if tc.onError == OnErrorRaise {
				var te *TaskError
				if !errors.As(err, &te) || te.Rows.Offset != 13 || te.Rows.Len != 1 || te.Attempts != 1 {
					t.Fatalf("err %v, want the task of row 13 failed after one attempt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			col := out[0].Column(0).(*array.Int64)
			errCol := out[0].Column(1).(*array.String)
			for i := 0; i < col.Len(); i++ {
				if nulled := col.IsNull(i); nulled != (i == 13) || errCol.IsNull(i) != (i != 13) || (!nulled && col.Value(i) != int64(i)) {
					t.Fatalf("row %d: null %v, error %q; want only row 13 null, with its error", i, nulled, errCol.Value(i))
				}
			}
		})
	}
}

func TestGroupThatDiesRunsItsTasksAlone(t *testing.T) {
	f := newFixture(t, Config{Executors: 1, Workers: 2})
	fn := newGroupedFunc("dies")
	f.warm(fn)
	*fn.groups, *fn.singles = nil, 0
	fn.dieOnce = true
	in := f.batches([]int{200}, 0)
	out, err := f.run(context.Background(), fn, CallOptions{RowsPerTask: 1}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "dies", out, in)
	if *fn.singles != len((*fn.groups)[0]) {
		t.Fatalf("%d tasks ran alone, want the %d of the group that died", *fn.singles, len((*fn.groups)[0]))
	}
}

func TestGroupSizes(t *testing.T) {
	for _, tc := range []struct {
		tasks   int
		costNs  float64
		workers int
		want    int
	}{
		{20000, 5000, 2, 200}, // 1 ms of 5 us tasks
		{100, 5000, 2, 25},    // two groups per worker
		{1000, 0, 2, 1},       // cost unknown
		{1000, 2e6, 2, 1},     // a task alone is long enough
		{1, 10, 2, 1},         // one task
		{3, 10, 2, 1},         // 3 tasks over 2 workers: one each
	} {
		if got := GroupSize(tc.tasks, tc.costNs, tc.workers); got != tc.want {
			t.Errorf("GroupSize(%d, %g, %d) = %d, want %d", tc.tasks, tc.costNs, tc.workers, got, tc.want)
		}
	}
}
