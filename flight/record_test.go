// Recording: a node with a Recorder records every call's input as it was
// received, without holding any Arrow memory after the recorder closes.
package flight

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/arrowio"
	"github.com/quiver-udf/quiver/internal/record"
)

// encodeBatch is rec alone as an IPC stream: two batches are byte-identical
// when these bytes are.
func encodeBatch(t *testing.T, rec arrow.RecordBatch) []byte {
	t.Helper()
	b, err := arrowio.StreamBytes(rec, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordCalls(t *testing.T) {
	dir := t.TempDir()
	rec, err := record.New(record.Config{Dir: dir}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// The node's checked allocator is asserted empty after the recorder
	// has closed (cleanups run last first).
	n := startNode(t, nodeOptions{cfg: Config{Recorder: rec}})
	t.Cleanup(func() { rec.Close() })
	c := client(t, n.unix)
	ctx := testCtx(t)

	// A compressed call: the reader inflates into the node's allocator, so
	// a batch the recorder kept would show as a leak.
	zin := int64Batches(100, 0, 2000)
	defer releaseAll(zin)
	var msgs capture
	w := flight.NewRecordWriter(&msgs, ipc.WithSchema(int64Schema), ipc.WithZstd())
	w.SetFlightDescriptor(path("identity"))
	for _, r := range zin {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rawExchange(ctx, c, msgs.msgs); err != nil {
		t.Fatal(err)
	}
	// A plain call.
	in := int64Batches(7, 5)
	defer releaseAll(in)
	res, err := exchange(ctx, c, path("identity"), int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	res.release()
	// Refused calls record nothing.
	if _, err := exchange(ctx, c, path("nope"), int64Schema, in); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown function: %v", err)
	}
	if _, err := exchange(ctx, c, path("haversine_km"), int64Schema, in); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("wrong arguments: %v", err)
	}
	n.srv.Shutdown(ctx)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if st := rec.Stats(); st.Calls != 2 || st.Batches != 5 || st.Dropped != 0 {
		t.Fatalf("recorder stats %+v, want 2 calls and 5 batches", st)
	}

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	got, err := record.Load(dir, "identity", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	want := append(append([]arrow.RecordBatch{}, zin...), in...)
	if len(got.Batches) != len(want) {
		t.Fatalf("%d batches recorded, want %d", len(got.Batches), len(want))
	}
	for i, b := range got.Batches {
		if !bytes.Equal(encodeBatch(t, b.Rec), encodeBatch(t, want[i])) {
			t.Fatalf("recorded batch %d (call %d seq %d) differs from the one sent", i, b.Call, b.Seq)
		}
	}
	for _, fn := range []string{"nope", "haversine_km"} {
		if _, err := record.Load(dir, fn, mem); err == nil {
			t.Fatalf("a refused call of %s was recorded", fn)
		}
	}
}
