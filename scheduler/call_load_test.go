// Tests of the shell under load: the window's backpressure, concurrent calls,
// and batches whose size is out of proportion to their bytes.
package scheduler

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

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
