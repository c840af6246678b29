// Retries: a task whose executor died runs again; a function that raised
// does not; a task that kills every executor fails the call naming its rows.
package scheduler

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/udf"
)

// dyingFunc fails with udf.ErrWorkerDied the first `deaths` times it sees a
// task starting at row offset `at` (identified by its first value), as a
// worker killed mid-task would.
func dyingFunc(at int64, deaths int, calls *sync.Map) testFunc {
	return testFunc{name: "dying", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		if x.Len() > 0 && x.Value(0) == at {
			n, _ := calls.LoadOrStore(at, new(int))
			count := n.(*int)
			*count++
			if *count <= deaths {
				return nil, udf.ErrWorkerDied
			}
		}
		return copyInt64(mem, x), nil
	}}
}

func TestRetryAfterWorkerDeath(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	var calls sync.Map
	in := f.batches([]int{100, 100}, 0)
	out, err := f.run(context.Background(), dyingFunc(130, 2, &calls), CallOptions{RowsPerTask: 10, Retries: 3}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for i, rec := range out {
		got := rec.Column(0).(*array.Int64).Int64Values()
		for j, v := range got {
			if want := int64(i*100 + j); v != want {
				t.Fatalf("batch %d row %d: got %d, want %d", i, j, v, want)
			}
		}
		rows += rec.NumRows()
	}
	if rows != 200 {
		t.Fatalf("got %d rows, want 200: rows lost or duplicated", rows)
	}
	if st := f.sched.Stats(); st.Retries != 2 {
		t.Fatalf("retries %d, want 2", st.Retries)
	}
}

func TestRetriesExhausted(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	var calls sync.Map
	in := f.batches([]int{100}, 0)
	_, err := f.run(context.Background(), dyingFunc(30, 100, &calls), CallOptions{RowsPerTask: 10, Retries: 2}, newSliceSource(in))
	var te *TaskError
	if !errors.As(err, &te) || !errors.Is(err, udf.ErrWorkerDied) {
		t.Fatalf("got %v, want a TaskError wrapping ErrWorkerDied", err)
	}
	if te.Rows != (Range{Offset: 30, Len: 10}) || te.Attempts != 3 {
		t.Fatalf("got rows %+v after %d attempts, want [30,40) after 3", te.Rows, te.Attempts)
	}
}

func TestRaisingFunctionIsNotRetried(t *testing.T) {
	f := newFixture(t, Config{Executors: 1})
	boom := errors.New("boom")
	var n int
	fn := testFunc{name: "raises", eval: func(context.Context, memory.Allocator, *array.Int64) (arrow.Array, error) {
		n++
		return nil, boom
	}}
	_, err := f.run(context.Background(), fn, CallOptions{Retries: 3}, newSliceSource(f.batches([]int{5}, 0)))
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("got %v after %d evaluations, want boom after 1", err, n)
	}
}
