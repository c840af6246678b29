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
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/internal/ipccheck"
	"github.com/quiver-udf/quiver/internal/shmtest"
	"github.com/quiver-udf/quiver/objectstore"
)

// shmNode is a node with an object store and a shared-memory directory.
type shmNode struct {
	*testNode
	store *objectstore.Store
	dir   string
}

// startShmNode starts a node of cfg whose store holds bound bytes and has
// a shared-memory directory. Cleanup checks that closing the store leaves
// no Arrow memory and removes the directory with its files.
func startShmNode(t testing.TB, bound int64, cfg Config) *shmNode {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	store, err := objectstore.New(objectstore.Config{MemoryBytes: bound, SpillDir: t.TempDir(), Mem: mem, ShmDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := store.ShmDir()
	if dir == "" {
		t.Fatal("the store made no shared-memory directory")
	}
	// Registered first, so it runs after the node's own cleanup.
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
		mem.AssertSize(t, 0)
		if shmtest.Exists(dir) {
			t.Errorf("the shared-memory directory is still there after Close")
		}
	})
	cfg.Objects = store
	n := startNode(t, nodeOptions{cfg: cfg, mem: mem})
	return &shmNode{testNode: n, store: store, dir: dir}
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

// goneSoon reports whether path is gone, waiting for it while a test may.
func goneSoon(path string) bool { return shmtest.GoneSoon(path, hang) }

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

	recs := []arrow.RecordBatch{shmtest.Batch(1, 5000), shmtest.Batch(2, 0), shmtest.Batch(3, 20_000)}
	defer releaseAll(recs)
	data := shmtest.Stream(t, shmtest.Schema, recs)
	path := filepath.Join(n.dir, "put-1")
	shmtest.WriteFile(t, path, data)

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
	frames := ipccheck.NewFrames(data, DefaultMaxMessageBytes)
	for {
		header, body, err := frames.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, &flight.FlightData{DataHeader: header, DataBody: body})
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
		sameBatches(t, res, shmtest.Schema, recs)
		res.release()
	}

	if err := releaseObject(ctx, unix, pr.ID); err != nil {
		t.Fatal(err)
	}
	if shmtest.Exists(path) {
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

// TestShmFileCutShort: a file truncated after its adoption (by a process
// of the node's user) fails the reads of its object, not the node.
func TestShmFileCutShort(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	c := client(t, n.unix)
	rec := shmtest.Batch(1, 50_000)
	defer rec.Release()
	path := filepath.Join(n.dir, "a")
	shmtest.WriteFile(t, path, shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec}))
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
	rec := shmtest.Batch(1, 100)
	defer rec.Release()
	shmtest.WriteFile(t, filepath.Join(n.dir, "a"), shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec}))
	for _, tok := range []string{"", "nope"} {
		ctx := dial.WithToken(testCtx(t), tok)
		for _, typ := range []string{ActionObjectShm, ActionObjectAdopt, ActionObjectLocate} {
			if _, err := doAction(ctx, c, typ, []byte(`{"file": "a", "id": "x"}`)); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("%s with token %q: %v, want Unauthenticated", typ, tok, err)
			}
		}
	}
	if !shmtest.Exists(filepath.Join(n.dir, "a")) {
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

// TestShmFreeNotUnderReader: releasing an object while a DoGet streams it
// leaves the mapping to the reader until it unpins.
func TestShmReleaseWhileReading(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	c := client(t, n.unix)
	recs := []arrow.RecordBatch{shmtest.Batch(1, 20_000), shmtest.Batch(2, 20_000), shmtest.Batch(3, 20_000)}
	defer releaseAll(recs)
	shmtest.WriteFile(t, filepath.Join(n.dir, "a"), shmtest.Stream(t, shmtest.Schema, recs))
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
