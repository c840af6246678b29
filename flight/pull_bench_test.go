// Benchmark of an object pull between two nodes on loopback.
package flight

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/objectstore"
)

// BenchmarkPullObject: a node pulls a 100 MB object (int64 and float64
// columns, one batch as put) from its owner over TCP loopback, and keeps
// it as a copy; the copy is dropped between iterations. MB/s is the
// pull's throughput.
func BenchmarkPullObject(b *testing.B) {
	ctx := testCtx(b)
	pp := startPullPair(b, 512<<20)
	const rows = 100_000_000 / 16
	schema := arrow.NewSchema([]arrow.Field{{Name: "v", Type: arrow.PrimitiveTypes.Int64}, {Name: "w", Type: arrow.PrimitiveTypes.Float64}}, nil)
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	vs, ws := bld.Field(0).(*array.Int64Builder), bld.Field(1).(*array.Float64Builder)
	vs.Reserve(rows)
	ws.Reserve(rows)
	for i := 0; i < rows; i++ {
		vs.UnsafeAppend(int64(i))
		ws.UnsafeAppend(float64(i) / 3)
	}
	rec := bld.NewRecordBatch()
	bld.Release()
	defer rec.Release()
	pr, err := putObject(ctx, client(b, pp.owner.unix), objectsDesc, schema, []arrow.RecordBatch{rec})
	if err != nil {
		b.Fatal(err)
	}
	id := objectstore.ID(pr.ID)
	b.SetBytes(pr.Bytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h, err := pp.puller.Acquire(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h.Release()
		pp.puller.copies.sweep(pp.puller.now(), true)
		b.StartTimer()
	}
	b.StopTimer()
	if st := pp.readerStore.Stats(); st.PullsTotal != int64(b.N) {
		b.Fatalf("%d pulls for %d iterations", st.PullsTotal, b.N)
	}
}
