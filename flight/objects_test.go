// Tests of objects over Flight: DoPut, DoGet and object_release with a real
// Go Flight client on the unix socket.
package flight

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/objectstore"
)

// startObjectNode starts a node with an object store of bound bytes. The
// store and the node share a checked allocator; cleanup shuts the node
// down, closes the store, and checks that no Arrow memory is left.
func startObjectNode(t testing.TB, bound int64) (*testNode, *objectstore.Store) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	store, err := objectstore.New(objectstore.Config{MemoryBytes: bound, SpillDir: t.TempDir(), Mem: mem}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the node's own cleanup.
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
		mem.AssertSize(t, 0)
	})
	n := startNode(t, nodeOptions{cfg: Config{Objects: store}, mem: mem})
	return n, store
}

// putObject sends schema and recs over DoPut under desc and returns the
// PutResult.
func putObject(ctx context.Context, c flight.Client, desc *flight.FlightDescriptor, schema *arrow.Schema, recs []arrow.RecordBatch) (*PutResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.DoPut(ctx)
	if err != nil {
		return nil, err
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(desc)
	werr := func() error {
		for _, rec := range recs {
			if err := w.Write(rec); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		return stream.CloseSend()
	}()
	if werr != nil && !errors.Is(werr, io.EOF) {
		return nil, werr
	}
	// EOF while writing: the server ended the call; Recv says why.
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var pr PutResult
	if err := json.Unmarshal(res.AppMetadata, &pr); err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return nil, errors.Join(errors.New("a second answer to DoPut"), err)
	}
	return &pr, nil
}

// getObject reads an object back over DoGet.
func getObject(ctx context.Context, c flight.Client, id string) (*result, error) {
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte(id)})
	if err != nil {
		return nil, err
	}
	return readAll(stream)
}

// releaseObject runs object_release on id.
func releaseObject(ctx context.Context, c flight.Client, id string) error {
	stream, err := c.DoAction(ctx, &flight.Action{Type: ActionObjectRelease, Body: []byte(id)})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

var objectsDesc = path(ObjectsPath)

// sameBatches fails unless got is schema and want, batch by batch.
func sameBatches(t *testing.T, res *result, schema *arrow.Schema, want []arrow.RecordBatch) {
	t.Helper()
	if !res.schema.Equal(schema) {
		t.Fatalf("schema %s, want %s", res.schema, schema)
	}
	if len(res.recs) != len(want) {
		t.Fatalf("%d batches, want %d", len(res.recs), len(want))
	}
	for i := range want {
		if !array.RecordEqual(res.recs[i], want[i]) {
			t.Fatalf("batch %d differs: got %d rows, want %d", i, res.recs[i].NumRows(), want[i].NumRows())
		}
	}
}

func TestObjectPutGet(t *testing.T) {
	ctx := testCtx(t)
	n, store := startObjectNode(t, 64<<20)
	c := client(t, n.unix)
	in := int64Batches(3, 0, 5, 10_000)
	defer releaseAll(in)
	pr, err := putObject(ctx, c, objectsDesc, int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.ID) != 32 || pr.Rows != 10_008 || pr.Bytes <= 10_000*8 {
		t.Fatalf("put result %+v: want a 32-digit id, 10008 rows and the bytes of the batches", pr)
	}
	for i := 0; i < 2; i++ { // reading does not consume the object
		res, err := getObject(ctx, c, pr.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameBatches(t, res, int64Schema, in)
		res.release()
	}
	// An empty stream is an object too.
	empty, err := putObject(ctx, c, objectsDesc, int64Schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := getObject(ctx, c, empty.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameBatches(t, res, int64Schema, nil)
	res.release()
	if st := store.Stats(); st.Objects != 2 {
		t.Fatalf("store stats %+v, want 2 objects", st)
	}
	for _, id := range []string{pr.ID, empty.ID} {
		if err := releaseObject(ctx, c, id); err != nil {
			t.Fatal(err)
		}
	}
	if st := store.Stats(); st.Objects != 0 || st.MemoryBytes != 0 {
		t.Fatalf("store stats after release %+v, want empty", st)
	}
}

func TestObjectBlob(t *testing.T) {
	ctx := testCtx(t)
	n, store := startObjectNode(t, 1<<20)
	h, err := store.Put(ctx, objectstore.Blob([]byte("hello, objects")))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	res, err := getObject(ctx, client(t, n.unix), string(h.ID()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	if !res.schema.Equal(blobSchema) || len(res.recs) != 1 || res.recs[0].NumRows() != 1 {
		t.Fatalf("blob came back as %s with %d batches", res.schema, len(res.recs))
	}
	if got := res.recs[0].Column(0).(*array.LargeBinary).Value(0); string(got) != "hello, objects" {
		t.Fatalf("blob %q", got)
	}
}

func TestObjectNotFound(t *testing.T) {
	ctx := testCtx(t)
	n, _ := startObjectNode(t, 1<<20)
	c := client(t, n.unix)
	for _, id := range []string{"no-such-object", ""} {
		if _, err := getObject(ctx, c, id); status.Code(err) != codes.NotFound {
			t.Fatalf("DoGet %q: %v, want NotFound", id, err)
		}
		if err := releaseObject(ctx, c, id); status.Code(err) != codes.NotFound {
			t.Fatalf("object_release %q: %v, want NotFound", id, err)
		}
	}
}

func TestObjectReleaseThenGet(t *testing.T) {
	ctx := testCtx(t)
	n, _ := startObjectNode(t, 1<<20)
	c := client(t, n.unix)
	in := int64Batches(100)
	defer releaseAll(in)
	pr, err := putObject(ctx, c, objectsDesc, int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := getObject(ctx, c, pr.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("DoGet after release: %v, want NotFound", err)
	}
	if err := releaseObject(ctx, c, pr.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("second release: %v, want NotFound", err)
	}
}

func TestObjectOverCapacity(t *testing.T) {
	ctx := testCtx(t)
	n, store := startObjectNode(t, 1<<20)
	c := client(t, n.unix)
	// 3 x 100,000 int64 rows: about 2.4 MB, more than the store's 1 MiB.
	big := int64Batches(100_000, 100_000, 100_000)
	defer releaseAll(big)
	if _, err := putObject(ctx, c, objectsDesc, int64Schema, big); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("put past the store's memory: %v, want ResourceExhausted", err)
	}
	// A pinned object leaves no room for a second one of its size.
	mid := int64Batches(70_000) // about 570 KB
	defer releaseAll(mid)
	pr, err := putObject(ctx, c, objectsDesc, int64Schema, mid)
	if err != nil {
		t.Fatal(err)
	}
	h, err := store.Acquire(objectstore.ID(pr.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := putObject(ctx, c, objectsDesc, int64Schema, mid); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("put beside a pinned object: %v, want ResourceExhausted", err)
	}
	h.Unpin()
	h.Release()
	// The node still serves: objects and calls.
	pr2, err := putObject(ctx, c, objectsDesc, int64Schema, mid)
	if err != nil {
		t.Fatalf("put after the refusals: %v", err)
	}
	for _, id := range []string{pr.ID, pr2.ID} {
		res, err := getObject(ctx, c, id)
		if err != nil {
			t.Fatal(err)
		}
		sameBatches(t, res, int64Schema, mid)
		res.release()
		if err := releaseObject(ctx, c, id); err != nil {
			t.Fatal(err)
		}
	}
	goodCall(t, ctx, c)
}

// TestObjectSpillOverFlight puts four times the store's memory and reads
// it all back: objects are spilled and restored behind DoGet, and
// cluster_status reports the store.
func TestObjectSpillOverFlight(t *testing.T) {
	ctx := testCtx(t)
	const bound = 1 << 20
	n, _ := startObjectNode(t, bound)
	c := client(t, n.unix)
	var ins [][]arrow.RecordBatch
	var ids []string
	for i := 0; i < 8; i++ {
		in := int64Batches(20_000, 20_000, 5) // about 330 KB
		defer releaseAll(in)
		pr, err := putObject(ctx, c, objectsDesc, int64Schema, in)
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		ins, ids = append(ins, in), append(ids, pr.ID)
	}
	for i := len(ids) - 1; i >= 0; i-- {
		res, err := getObject(ctx, c, ids[i])
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		sameBatches(t, res, int64Schema, ins[i])
		res.release()
	}
	body, err := action(t, c, ActionClusterStatus)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Nodes []struct {
			ObjectStore map[string]any `json:"object_store"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	st := raw.Nodes[0].ObjectStore
	for _, k := range []string{"objects", "memory_bytes", "memory_limit_bytes", "memory_peak_bytes",
		"spilled_objects", "spilled_bytes", "spill_files", "spill_file_bytes"} {
		if _, ok := st[k]; !ok {
			t.Errorf("cluster_status object_store lacks %q: %s", k, body)
		}
	}
	if st["objects"] != 8.0 || st["spilled_objects"].(float64) == 0 || st["memory_peak_bytes"].(float64) > bound {
		t.Errorf("object_store %v: want 8 objects, some spilled, the peak within %d", st, bound)
	}
	for _, id := range ids {
		if err := releaseObject(ctx, c, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestObjectBadPut(t *testing.T) {
	ctx := testCtx(t)
	n, _ := startObjectNode(t, 1<<20)
	c := client(t, n.unix)
	in := int64Batches(10)
	defer releaseAll(in)
	for _, desc := range []*flight.FlightDescriptor{path("identity"), {Type: flight.DescriptorCMD, Cmd: []byte("objects")}} {
		if _, err := putObject(ctx, c, desc, int64Schema, in); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("DoPut with descriptor %v: %v, want InvalidArgument", desc, err)
		}
	}
	goodCall(t, ctx, c)
}

func TestObjectsWithoutStore(t *testing.T) {
	ctx := testCtx(t)
	n := startNode(t, nodeOptions{})
	c := client(t, n.unix)
	in := int64Batches(10)
	defer releaseAll(in)
	if _, err := putObject(ctx, c, objectsDesc, int64Schema, in); status.Code(err) != codes.Unimplemented {
		t.Fatalf("DoPut: %v, want Unimplemented", err)
	}
	if _, err := getObject(ctx, c, "x"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("DoGet: %v, want Unimplemented", err)
	}
}
