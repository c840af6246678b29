// Tests of objects through shared memory: object_shm, object_adopt and
// object_locate with real files, a real store and Go Flight clients.
package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/objectstore"
)

// shmNode is a node with an object store and a shared-memory directory.
type shmNode struct {
	*testNode
	store *objectstore.Store
	dir   string
}

// startShmNode starts a node of cfg whose store holds bound bytes.
// Cleanup checks that no file is left mapped.
func startShmNode(t *testing.T, bound int64, cfg Config) *shmNode {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	store, err := objectstore.New(objectstore.Config{MemoryBytes: bound, SpillDir: t.TempDir(), Mem: mem}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var n *testNode
	// Registered first, so it runs after the node's own cleanup.
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
		mem.AssertSize(t, 0)
		if m := n.srv.objects.shm.mapped.Load(); m != 0 {
			t.Errorf("%d files still mapped after Close", m)
		}
		if d := n.srv.objects.shm.doubleFrees.Load(); d != 0 {
			t.Errorf("%d release hooks called twice", d)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("left in the shared-memory directory after Close: %v", left)
		}
	})
	cfg.Objects = store
	n = startNode(t, nodeOptions{cfg: cfg, mem: mem})
	n.srv.EnableShm(dir)
	return &shmNode{testNode: n, store: store, dir: dir}
}

// shmSchema has the types a client puts: ints and strings with nulls,
// floats, lists and a dictionary.
var shmSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}},
}, nil)

// shmBatch makes a batch of shmSchema with n rows from seed.
func shmBatch(seed int64, n int) arrow.RecordBatch {
	rng := rand.New(rand.NewSource(seed))
	b := array.NewRecordBuilder(memory.DefaultAllocator, shmSchema)
	defer b.Release()
	ib := b.Field(0).(*array.Int64Builder)
	fb := b.Field(1).(*array.Float64Builder)
	sb := b.Field(2).(*array.StringBuilder)
	lb := b.Field(3).(*array.ListBuilder)
	lvb := lb.ValueBuilder().(*array.Int32Builder)
	db := b.Field(4).(*array.BinaryDictionaryBuilder)
	for i := 0; i < n; i++ {
		if i%7 == 3 {
			ib.AppendNull()
			sb.AppendNull()
			lb.AppendNull()
		} else {
			ib.Append(rng.Int63())
			sb.Append(fmt.Sprintf("row %d of %d", i, seed))
			lb.Append(true)
			for k := 0; k < i%4; k++ {
				lvb.Append(int32(k))
			}
		}
		fb.Append(rng.Float64())
		if err := db.AppendString([]string{"red", "green", "blue"}[i%3]); err != nil {
			panic(err)
		}
	}
	return b.NewRecordBatch()
}

// streamBytes is recs as an Arrow IPC stream.
func streamBytes(t testing.TB, schema *arrow.Schema, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// doAction runs an action and returns the body of its one result.
func doAction(ctx context.Context, c flight.Client, typ string, body []byte) ([]byte, error) {
	stream, err := c.DoAction(ctx, &flight.Action{Type: typ, Body: body})
	if err != nil {
		return nil, err
	}
	var out []byte
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = r.Body
	}
}

func adopt(ctx context.Context, c flight.Client, name string) (*PutResult, error) {
	body, _ := json.Marshal(map[string]string{"file": name})
	out, err := doAction(ctx, c, ActionObjectAdopt, body)
	if err != nil {
		return nil, err
	}
	var pr PutResult
	if err := json.Unmarshal(out, &pr); err != nil {
		return nil, err
	}
	return &pr, nil
}

func locate(ctx context.Context, c flight.Client, id string) (*Located, error) {
	body, _ := json.Marshal(map[string]string{"id": id})
	out, err := doAction(ctx, c, ActionObjectLocate, body)
	if err != nil {
		return nil, err
	}
	var l Located
	if err := json.Unmarshal(out, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// rawGet reads DoGet's messages as they come.
func rawGet(ctx context.Context, c flight.Client, id string) ([]*flight.FlightData, error) {
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte(id)})
	if err != nil {
		return nil, err
	}
	var out []*flight.FlightData
	for {
		fd, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fd)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// goneSoon reports whether path is gone, waiting for it a while: the
// spiller calls the release hook of an object it spilled after it let go
// of the store's lock, which may be after a put it made room for returned.
func goneSoon(path string) bool {
	for deadline := time.Now().Add(hang); exists(path) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return !exists(path)
}

func TestShmAdoptGetRelease(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	unix, tcp := client(t, n.unix), client(t, n.tcp)

	out, err := doAction(ctx, unix, ActionObjectShm, nil)
	if err != nil || string(out) != fmt.Sprintf(`{"dir":%q}`, n.dir) {
		t.Fatalf("object_shm over the socket: %s, %v", out, err)
	}
	if out, err := doAction(ctx, tcp, ActionObjectShm, nil); err != nil || string(out) != `{"dir":""}` {
		t.Fatalf("object_shm over TCP: %s, %v; want no directory", out, err)
	}

	recs := []arrow.RecordBatch{shmBatch(1, 5000), shmBatch(2, 0), shmBatch(3, 20_000)}
	defer releaseAll(recs)
	data := streamBytes(t, shmSchema, recs)
	path := filepath.Join(n.dir, "put-1")
	writeFile(t, path, data)

	if _, err := adopt(ctx, tcp, "put-1"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("object_adopt over TCP: %v, want Unimplemented", err)
	}
	pr, err := adopt(ctx, unix, "put-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.ID) != 32 || pr.Rows != 25_000 || pr.Bytes != int64(len(data)) {
		t.Fatalf("adopt answered %+v: want a 32-digit id, 25000 rows, %d bytes", pr, len(data))
	}
	if _, err := adopt(ctx, unix, "put-1"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("adopting a file twice: %v, want InvalidArgument", err)
	}
	loc, err := locate(ctx, unix, pr.ID)
	if err != nil || loc.File != "put-1" || loc.Bytes != int64(len(data)) {
		t.Fatalf("object_locate: %+v, %v", loc, err)
	}
	if loc, err := locate(ctx, tcp, pr.ID); err != nil || loc.File != "" || loc.Bytes != int64(len(data)) {
		t.Fatalf("object_locate over TCP: %+v, %v; want no file", loc, err)
	}

	// DoGet sends the file's messages byte for byte, on both transports.
	var want []*flight.FlightData
	frames := &ipcFrames{b: data, maxMessage: DefaultMaxMessageBytes}
	for {
		fd, err := frames.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fd)
	}
	for name, c := range map[string]flight.Client{"unix": unix, "tcp": tcp} {
		got, err := rawGet(ctx, c, pr.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", name, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].DataHeader, want[i].DataHeader) || !bytes.Equal(got[i].DataBody, want[i].DataBody) {
				t.Fatalf("%s: message %d differs from the file's", name, i)
			}
		}
		res, err := getObject(ctx, c, pr.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameBatches(t, res, shmSchema, recs)
		res.release()
	}

	if err := releaseObject(ctx, unix, pr.ID); err != nil {
		t.Fatal(err)
	}
	if exists(path) {
		t.Fatal("the file is still there after the object's release")
	}
	if _, err := locate(ctx, unix, pr.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("object_locate after release: %v, want NotFound", err)
	}
	if st := n.store.Stats(); st.Objects != 0 || st.MemoryBytes != 0 {
		t.Fatalf("store after release: %+v", st)
	}
	// An object put by DoPut has no file.
	in := int64Batches(10)
	defer releaseAll(in)
	put, err := putObject(ctx, unix, objectsDesc, int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	if loc, err := locate(ctx, unix, put.ID); err != nil || loc.File != "" {
		t.Fatalf("object_locate of a DoPut object: %+v, %v; want no file", loc, err)
	}
	if err := releaseObject(ctx, unix, put.ID); err != nil {
		t.Fatal(err)
	}
}

func TestShmOverCapacity(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 256<<10, Config{})
	c := client(t, n.unix)
	big := shmBatch(1, 40_000)
	defer big.Release()
	writeFile(t, filepath.Join(n.dir, "big"), streamBytes(t, shmSchema, []arrow.RecordBatch{big}))
	if _, err := adopt(ctx, c, "big"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a file larger than the store: %v, want ResourceExhausted", err)
	}
	if exists(filepath.Join(n.dir, "big")) {
		t.Fatal("the file larger than the store is still there")
	}
	// One that fits alone, but not beside a pinned object: the store
	// refuses it and its release hook removes it.
	half := shmBatch(2, 3_500)
	defer half.Release()
	data := streamBytes(t, shmSchema, []arrow.RecordBatch{half})
	if len(data) < 129<<10 || len(data) > 192<<10 {
		t.Fatalf("the test wants a file of 129 to 192 KiB, has %d bytes", len(data))
	}
	writeFile(t, filepath.Join(n.dir, "a"), data)
	a, err := adopt(ctx, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	h, err := n.store.Acquire(objectstore.ID(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(n.dir, "c"), data)
	_, err = adopt(ctx, c, "c")
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a file that does not fit beside a pinned object: %v, want ResourceExhausted", err)
	}
	if exists(filepath.Join(n.dir, "c")) {
		t.Fatal("the refused file is still there")
	}
	h.Unpin()
	h.Release()
	if err := releaseObject(ctx, c, a.ID); err != nil {
		t.Fatal(err)
	}
}

// TestShmSpillAndClose: a spilled object's file goes; the object reads
// back from disk by DoGet; Close removes the files left.
func TestShmSpillAndClose(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 1<<20, Config{})
	c := client(t, n.unix)
	recA, recB := shmBatch(1, 14_000), shmBatch(2, 14_000)
	defer recA.Release()
	defer recB.Release()
	dataA := streamBytes(t, shmSchema, []arrow.RecordBatch{recA})
	if len(dataA) < 550<<10 || len(dataA) > 1<<20 {
		t.Fatalf("the test wants a file of 550 KiB to 1 MiB, has %d bytes", len(dataA))
	}
	writeFile(t, filepath.Join(n.dir, "a"), dataA)
	writeFile(t, filepath.Join(n.dir, "b"), streamBytes(t, shmSchema, []arrow.RecordBatch{recB}))
	a, err := adopt(ctx, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := adopt(ctx, c, "b") // waits while a is spilled
	if err != nil {
		t.Fatal(err)
	}
	if !goneSoon(filepath.Join(n.dir, "a")) {
		t.Fatal("a spilled, its file is still there")
	}
	if loc, err := locate(ctx, c, a.ID); err != nil || loc.File != "" {
		t.Fatalf("object_locate of a spilled object: %+v, %v; want no file", loc, err)
	}
	res, err := getObject(ctx, c, a.ID) // read back as Go memory; b spills
	if err != nil {
		t.Fatal(err)
	}
	sameBatches(t, res, shmSchema, []arrow.RecordBatch{recA})
	res.release()
	if loc, err := locate(ctx, c, a.ID); err != nil || loc.File != "" {
		t.Fatalf("object_locate of an object read back: %+v, %v; want no file", loc, err)
	}
	if err := releaseObject(ctx, c, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := releaseObject(ctx, c, b.ID); err != nil {
		t.Fatal(err)
	}
	if st := n.store.Stats(); st.SpillsTotal < 2 || st.Objects != 0 {
		t.Fatalf("store: %+v; want both spilled, then freed", st)
	}
	for _, name := range []string{"c", "d"} {
		small := shmBatch(3, 1000)
		writeFile(t, filepath.Join(n.dir, name), streamBytes(t, shmSchema, []arrow.RecordBatch{small}))
		small.Release()
		if _, err := adopt(ctx, c, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(n.dir); len(left) != 0 {
		t.Fatalf("files left after Close: %v", left)
	}
	if m := n.srv.objects.shm.mapped.Load(); m != 0 {
		t.Fatalf("%d files mapped after Close", m)
	}
}

// TestShmFileCutShort: a file truncated after its adoption (by a process
// of the node's user) fails the reads of its object, not the node.
func TestShmFileCutShort(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	c := client(t, n.unix)
	rec := shmBatch(1, 50_000)
	defer rec.Release()
	path := filepath.Join(n.dir, "a")
	writeFile(t, path, streamBytes(t, shmSchema, []arrow.RecordBatch{rec}))
	pr, err := adopt(ctx, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err = getObject(ctx, c, pr.ID)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "fault") {
		t.Fatalf("DoGet of a file cut short: %v, want Internal naming the fault", err)
	}
	goodCall(t, ctx, c)
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
}

// TestShmToken: the actions need the token, as every call does.
func TestShmToken(t *testing.T) {
	const token = "s3cret"
	n := startShmNode(t, 1<<20, Config{Token: token})
	c := client(t, n.unix)
	rec := shmBatch(1, 100)
	defer rec.Release()
	writeFile(t, filepath.Join(n.dir, "a"), streamBytes(t, shmSchema, []arrow.RecordBatch{rec}))
	for _, tok := range []string{"", "nope"} {
		ctx := dial.WithToken(testCtx(t), tok)
		for _, typ := range []string{ActionObjectShm, ActionObjectAdopt, ActionObjectLocate} {
			if _, err := doAction(ctx, c, typ, []byte(`{"file": "a", "id": "x"}`)); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("%s with token %q: %v, want Unauthenticated", typ, tok, err)
			}
		}
	}
	if !exists(filepath.Join(n.dir, "a")) {
		t.Fatal("a call without the token touched the file")
	}
	ctx := dial.WithToken(testCtx(t), token)
	pr, err := adopt(ctx, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
}

func TestShmOff(t *testing.T) {
	ctx := testCtx(t)
	n, _ := startObjectNode(t, 1<<20)
	c := client(t, n.unix)
	if out, err := doAction(ctx, c, ActionObjectShm, nil); err != nil || string(out) != `{"dir":""}` {
		t.Fatalf("object_shm without a directory: %s, %v", out, err)
	}
	if _, err := adopt(ctx, c, "x"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("object_adopt without a directory: %v, want Unimplemented", err)
	}
	if _, err := locate(ctx, c, "no-such-object"); status.Code(err) != codes.NotFound {
		t.Fatalf("object_locate of an unknown id: %v, want NotFound", err)
	}
	none := startNode(t, nodeOptions{})
	for _, typ := range []string{ActionObjectAdopt, ActionObjectLocate} {
		if _, err := doAction(ctx, client(t, none.unix), typ, []byte(`{}`)); status.Code(err) != codes.Unimplemented {
			t.Fatalf("%s without an object store: %v, want Unimplemented", typ, err)
		}
	}
}

func TestShmDir(t *testing.T) {
	parent := t.TempDir()
	uid := os.Geteuid()
	stale := filepath.Join(parent, fmt.Sprintf("quiver-%d-stale", uid))
	other := filepath.Join(parent, "quiver-other")
	for _, d := range []string{stale, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "f"), []byte("x"))
	}
	a, err := OpenShmDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if exists(stale) {
		t.Fatal("the directory of a node that died is still there")
	}
	if !exists(other) {
		t.Fatal("a directory that is not a node's was removed")
	}
	st, err := os.Stat(a.Path)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(a.Path), fmt.Sprintf("quiver-%d-", uid)) {
		t.Fatalf("shared-memory directory %s: %v %v", a.Path, st.Mode(), err)
	}
	b, err := OpenShmDir(parent) // a second node: a's directory is live
	if err != nil {
		t.Fatal(err)
	}
	if !exists(a.Path) || a.Path == b.Path {
		t.Fatalf("a second node removed or took the first's directory")
	}
	writeFile(t, filepath.Join(a.Path, "f"), []byte("x"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(a.Path) {
		t.Fatal("the directory is still there after Close")
	}
	b.Close()
	if _, err := OpenShmDir(filepath.Join(parent, "missing")); err == nil {
		t.Fatal("a directory in a missing parent")
	}
}

// TestShmFreeNotUnderReader: releasing an object while a DoGet streams it
// leaves the mapping to the reader until it unpins.
func TestShmReleaseWhileReading(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	c := client(t, n.unix)
	recs := []arrow.RecordBatch{shmBatch(1, 20_000), shmBatch(2, 20_000), shmBatch(3, 20_000)}
	defer releaseAll(recs)
	writeFile(t, filepath.Join(n.dir, "a"), streamBytes(t, shmSchema, recs))
	pr, err := adopt(ctx, c, "a")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte(pr.ID)})
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	if !rdr.Next() {
		t.Fatal(rdr.Err())
	}
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
	for i := 1; rdr.Next(); i++ {
		if !array.RecordEqual(rdr.RecordBatch(), recs[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !goneSoon(filepath.Join(n.dir, "a")) { // the DoGet unpins as it returns
		t.Fatal("the file outlived its object's last reader")
	}
}
