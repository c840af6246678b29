// Benchmarks of the Flight path: identity throughput over a unix socket
// and TCP, and the latency of a 1-row call on a persistent exchange.
//
// Client and server run in one process, so allocations (ReportAllocs) are
// both sides' together. Run with: go test -run xxx -bench . ./flight/
package flight

import (
	"sort"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchRows is the size of a throughput benchmark's batches.
const benchRows = 64 << 10

// openLockstep opens an identity exchange on addr and returns its writer
// and reader once the output schema has arrived.
func openLockstep(b *testing.B, addr string) (*ipc.Writer, *flight.Reader, flight.FlightService_DoExchangeClient) {
	b.Helper()
	c := client(b, addr)
	stream, err := c.DoExchange(testCtx(b))
	if err != nil {
		b.Fatal(err)
	}
	w, err := sendSchema(stream, path("identity"), int64Schema, true)
	if err != nil {
		b.Fatal(err)
	}
	rdr, err := flight.NewRecordReader(stream)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rdr.Release)
	return w, rdr, stream
}

// benchIdentity streams b.N batches of benchRows int64 rows through one
// identity exchange, writing and reading at once.
func benchIdentity(b *testing.B, addr func(*testNode) string) {
	n := startNode(b, nodeOptions{mem: memory.DefaultAllocator})
	w, rdr, stream := openLockstep(b, addr(n))
	vals := make([]int64, benchRows)
	for i := range vals {
		vals[i] = int64(i)
	}
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	bld.AppendValues(vals, nil)
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(int64Schema, []arrow.Array{col}, benchRows)
	col.Release()
	defer rec.Release()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := w.Write(rec); err != nil {
				wrote <- err
				return
			}
		}
		if err := w.Close(); err != nil {
			wrote <- err
			return
		}
		wrote <- stream.CloseSend()
	}()
	for i := 0; i < b.N; i++ {
		if !rdr.Next() {
			b.Fatalf("batch %d: %v", i, rdr.Err())
		}
		if out := rdr.RecordBatch(); out.NumRows() != benchRows {
			b.Fatalf("batch %d: %d rows", i, out.NumRows())
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := <-wrote; err != nil {
		b.Fatal(err)
	}
	if rdr.Next() || rdr.Err() != nil {
		b.Fatalf("the exchange did not end cleanly: %v", rdr.Err())
	}
	rows := float64(b.N) * benchRows
	b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
	b.ReportMetric(rows*8/1e6/elapsed.Seconds(), "MB/s")
}

func BenchmarkIdentityUnix(b *testing.B) {
	benchIdentity(b, func(n *testNode) string { return n.unix })
}

func BenchmarkIdentityTCP(b *testing.B) {
	benchIdentity(b, func(n *testNode) string { return n.tcp })
}

// BenchmarkRoundTrip1Row writes one 1-row batch and reads its result, b.N
// times on one exchange, and reports the median and 99th percentile.
func BenchmarkRoundTrip1Row(b *testing.B) {
	for _, tr := range []string{"unix", "tcp"} {
		b.Run(tr, func(b *testing.B) {
			n := startNode(b, nodeOptions{mem: memory.DefaultAllocator})
			w, rdr, stream := openLockstep(b, n.transports()[tr])
			rec := int64Batch(7, 1, false)
			defer rec.Release()
			lat := make([]time.Duration, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := w.Write(rec); err != nil {
					b.Fatal(err)
				}
				if !rdr.Next() {
					b.Fatalf("call %d: %v", i, rdr.Err())
				}
				lat[i] = time.Since(t0)
			}
			b.StopTimer()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			if err := stream.CloseSend(); err != nil {
				b.Fatal(err)
			}
			if rdr.Next() || rdr.Err() != nil {
				b.Fatalf("the exchange did not end cleanly: %v", rdr.Err())
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			us := func(q float64) float64 {
				return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3
			}
			b.ReportMetric(us(0.50), "p50-us")
			b.ReportMetric(us(0.99), "p99-us")
		})
	}
}
