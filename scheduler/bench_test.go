// Benchmarks of the shell: what one task costs through Run.
package scheduler

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// repeatSource yields one batch n times.
type repeatSource struct {
	rec arrow.RecordBatch
	n   int
}

func (s *repeatSource) Next() (arrow.RecordBatch, error) {
	if s.n == 0 {
		return nil, io.EOF
	}
	s.n--
	s.rec.Retain()
	return s.rec, nil
}

func (s *repeatSource) Close() {}

// BenchmarkRunTasks runs one call of b.N tasks of 16 rows each of a cheap
// native function (a copy) on two executors, and reports ns and allocations
// per task: the scheduler's own overhead.
func BenchmarkRunTasks(b *testing.B) {
	s, err := New(Config{Executors: 2}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const rows, per = 1024, 16
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	for i := 0; i < rows; i++ {
		bld.Append(int64(i))
	}
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(inSchema, []arrow.Array{col}, rows)
	col.Release()
	defer rec.Release()
	fn := testFunc{name: "copy", eval: func(_ context.Context, mem memory.Allocator, x *array.Int64) (arrow.Array, error) {
		return copyInt64(mem, x), nil
	}}
	bound, err := Bind(fn, inSchema, CallOptions{RowsPerTask: per})
	if err != nil {
		b.Fatal(err)
	}
	batches := (b.N + rows/per - 1) / (rows / per)
	b.ReportAllocs()
	b.ResetTimer()
	err = s.Run(context.Background(), bound, &repeatSource{rec: rec, n: batches}, func(arrow.RecordBatch, BatchInfo) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batches*rows/per), "ns/task")
}

// BenchmarkHybridPlace: one placement decision with 999 peers (a 1,000
// node cluster), local slots full so that peers are looked at.
func BenchmarkHybridPlace(b *testing.B) {
	peers := make([]PeerView, 999)
	for i := range peers {
		peers[i] = PeerView{Name: fmt.Sprintf("n%03d", i), Slots: 4, Running: i % 5, Inflight: i % 2}
	}
	s := Snapshot{Lane: LaneWorkers, Slots: 4, Running: 4, Queued: 3, Peers: peers}
	t := TaskInfo{Func: "f", Rows: 100, Bytes: 8000, CostNs: 20_000_000}
	h := Hybrid{}
	spilled := 0
	x := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		x = splitmix(x)
		s.Rand = x
		if !h.Place(s, t).Local() {
			spilled++
		}
	}
	if spilled == 0 {
		b.Fatal("no task spilled")
	}
}
