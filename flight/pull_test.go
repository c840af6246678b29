// Pulls between two real servers: a reader node pulls an object its peer
// owns once, whatever the readers, serves it while the owner holds it,
// and never after the owner released it or was lost.
package flight

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/objectstore"
)

// pullPair is an owner node and a reader node that pulls from it.
type pullPair struct {
	owner, reader           *testNode
	ownerStore, readerStore *objectstore.Store
	puller                  *Puller
	alive                   atomic.Bool // whether the owner counts as a live member
}

// newTestStore is a store with owner tag owner, closed and checked empty
// at cleanup (after the node that serves it).
func newTestStore(t testing.TB, bound int64, owner string, mem *memory.CheckedAllocator) *objectstore.Store {
	t.Helper()
	store, err := objectstore.New(objectstore.Config{MemoryBytes: bound, SpillDir: t.TempDir(), Mem: mem, Owner: owner}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
		mem.AssertSize(t, 0)
	})
	return store
}

func startPullPair(t testing.TB, bound int64) *pullPair {
	t.Helper()
	pp := &pullPair{}
	pp.alive.Store(true)
	memA, memB := memory.NewCheckedAllocator(memory.NewGoAllocator()), memory.NewCheckedAllocator(memory.NewGoAllocator())
	tagA := objectstore.NewOwnerTag()
	pp.ownerStore = newTestStore(t, bound, tagA, memA)
	pp.owner = startNode(t, nodeOptions{cfg: Config{Objects: pp.ownerStore}, mem: memA})
	addrA := strings.TrimPrefix(pp.owner.tcp, "grpc://")
	pp.readerStore = newTestStore(t, bound, objectstore.NewOwnerTag(), memB)
	peers := NewPeerClient(PeerConfig{Mem: memB})
	owner := func(tag string) (string, bool) { return addrA, tag == tagA && pp.alive.Load() }
	var err error
	if pp.puller, err = NewPuller(PullConfig{Owner: owner}, pp.readerStore, peers, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pp.puller.Close(); peers.Close() }) // after the reader node's shutdown
	pp.reader = startNode(t, nodeOptions{cfg: Config{Objects: pp.readerStore, Pull: pp.puller}, mem: memB})
	return pp
}

var pullSchema = arrow.NewSchema([]arrow.Field{
	{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// pullBatch is n rows: x = start+i (null every 7th), s = "row-i" (null
// every 5th), about 20 bytes a row.
func pullBatch(start int64, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, pullSchema)
	defer b.Release()
	xs, ss := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.StringBuilder)
	for i := 0; i < n; i++ {
		if i%7 == 6 {
			xs.AppendNull()
		} else {
			xs.Append(start + int64(i))
		}
		if i%5 == 4 {
			ss.AppendNull()
		} else {
			ss.Append(fmt.Sprintf("row-%d", start+int64(i)))
		}
	}
	return b.NewRecordBatch()
}

// sameTable fails unless res holds the rows of want, however cut into
// batches.
func sameTable(t *testing.T, res *result, schema *arrow.Schema, want []arrow.RecordBatch) {
	t.Helper()
	got := array.NewTableFromRecords(res.schema, res.recs)
	defer got.Release()
	exp := array.NewTableFromRecords(schema, want)
	defer exp.Release()
	if !array.TableEqual(got, exp) {
		t.Fatalf("got %d rows in %d batches, want %d rows: they differ", got.NumRows(), len(res.recs), exp.NumRows())
	}
}

func TestPullOnceForManyReaders(t *testing.T) {
	ctx := testCtx(t)
	pp := startPullPair(t, 256<<20)
	in := []arrow.RecordBatch{pullBatch(0, 3), pullBatch(3, 300_000), pullBatch(300_003, 10)} // the big one is cut
	defer releaseAll(in)
	pr, err := putObject(ctx, client(t, pp.owner.unix), objectsDesc, pullSchema, in)
	if err != nil {
		t.Fatal(err)
	}
	if objectstore.ID(pr.ID).Owner() != pp.ownerStore.Owner() {
		t.Fatalf("id %q does not name its owner %s", pr.ID, pp.ownerStore.Owner())
	}
	c := client(t, pp.reader.tcp)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := getObject(ctx, c, pr.ID)
			if err != nil {
				errs <- err
				return
			}
			defer res.release()
			if len(res.recs) <= len(in) {
				errs <- fmt.Errorf("%d batches: the large one was not cut into chunks", len(res.recs))
			}
			sameTable(t, res, pullSchema, in)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := pp.readerStore.Stats()
	if st.PullsTotal != 1 || st.PulledBytesTotal <= 0 || st.Objects != 1 {
		t.Fatalf("reader's store %+v: want one pull and one copy", st)
	}

	// Released by its owner: the copy is never served again.
	if err := releaseObject(ctx, client(t, pp.owner.unix), pr.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := getObject(ctx, c, pr.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("DoGet of a copy after its owner released it: %v, want NotFound", err)
	}
	if n := pp.puller.copies.len(); n != 0 || pp.readerStore.Stats().Objects != 0 {
		t.Fatalf("%d copies kept, store %+v: want none", n, pp.readerStore.Stats())
	}
}

func TestPullBlobAndStream(t *testing.T) {
	ctx := testCtx(t)
	pp := startPullPair(t, 256<<20)
	blob := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16+3) // three chunks
	id, _, err := pp.ownerStore.PublishBlob(ctx, "", blob)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, pp.reader.unix)
	res, err := getObject(ctx, c, string(id))
	if err != nil {
		t.Fatal(err)
	}
	if !res.schema.Equal(blobSchema) || len(res.recs) != 1 || !bytes.Equal(res.recs[0].Column(0).(*array.LargeBinary).Value(0), blob) {
		t.Fatalf("pulled blob: %s in %d batches, not the blob", res.schema, len(res.recs))
	}
	res.release()

	// An object held as the bytes of an IPC stream (adopted from shared memory).
	in := []arrow.RecordBatch{pullBatch(0, 400_000), pullBatch(400_000, 5)}
	defer releaseAll(in)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(pullSchema))
	for _, rec := range in {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	h, err := pp.ownerStore.Put(ctx, objectstore.StreamBytes(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.ownerStore.Publish(h, nil); err != nil {
		t.Fatal(err)
	}
	if res, err = getObject(ctx, c, string(h.ID())); err != nil {
		t.Fatal(err)
	}
	defer res.release()
	sameTable(t, res, pullSchema, in)
	if st := pp.readerStore.Stats(); st.PullsTotal != 2 {
		t.Fatalf("reader's store %+v: want two pulls", st)
	}
}

func TestPullOwnerLost(t *testing.T) {
	ctx := testCtx(t)
	pp := startPullPair(t, 64<<20)
	in := int64Batches(1000)
	defer releaseAll(in)
	pr, err := putObject(ctx, client(t, pp.owner.unix), objectsDesc, int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, pp.reader.tcp)
	// An id that names the reader itself, or no node, is looked up there only.
	for _, id := range []objectstore.ID{pp.readerStore.NewID(), objectstore.NewID()} {
		if _, err := getObject(ctx, c, string(id)); status.Code(err) != codes.NotFound {
			t.Fatalf("DoGet %s: %v, want NotFound", id, err)
		}
	}
	res, err := getObject(ctx, c, pr.ID)
	if err != nil {
		t.Fatal(err)
	}
	res.release()

	// The owner is declared dead: its objects are lost, copies included.
	pp.alive.Store(false)
	_, err = getObject(ctx, c, pr.ID)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "owner") {
		t.Fatalf("DoGet of a dead owner's object: %v, want NotFound naming the owner", err)
	}
	// Alive as far as membership knows, but gone: the check fails, never hangs.
	pp.alive.Store(true)
	if res, err = getObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
	res.release()
	sctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	pp.owner.srv.Shutdown(sctx)
	if _, err = getObject(ctx, c, pr.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("DoGet after the owner stopped: %v, want NotFound", err)
	}
	if st := pp.readerStore.Stats(); st.Objects != 0 {
		t.Fatalf("reader's store %+v: the lost copy is still kept", st)
	}
}
