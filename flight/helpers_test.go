// Test helpers: a real node on TCP and a unix socket, Go Flight clients,
// and exchanges built from batches or from raw FlightData messages.
package flight

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// hang bounds every call in these tests: reaching it means a hang, and the
// test fails instead of blocking the suite. It never decides a pass.
const hang = 30 * time.Second

// testVersion is the version the test nodes report.
const testVersion = "test-version"

// testNode is a real Flight server with its scheduler, serving TCP on
// 127.0.0.1:0 and a unix socket at once.
type testNode struct {
	srv   *Server
	sched *scheduler.Scheduler
	tcp   string // client address: grpc://127.0.0.1:PORT
	unix  string // client address: grpc+unix:///PATH
}

// nodeOptions change what startNode builds; the zero value is a node with
// the built-in catalog and a checked allocator.
type nodeOptions struct {
	cfg   Config           // Mem, Address and Socket are filled in
	sched scheduler.Config // Mem is filled in
	cat   *udf.Catalog     // nil: udf.NewBuiltinCatalog()
	mem   memory.Allocator // nil: a checked allocator, asserted empty at cleanup
}

// startNode starts a node; cleanup shuts it down, waits for its goroutines
// and checks that no Arrow memory is left.
func startNode(t testing.TB, o nodeOptions) *testNode {
	t.Helper()
	mem := o.mem
	var checked *memory.CheckedAllocator
	if mem == nil {
		checked = memory.NewCheckedAllocator(memory.NewGoAllocator())
		mem = checked
	}
	if o.cat == nil {
		o.cat = udf.NewBuiltinCatalog()
	}
	o.sched.Mem = mem
	sched, err := scheduler.New(o.sched, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "q.sock")
	unix, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	o.cfg.Mem = mem
	o.cfg.Version = testVersion
	o.cfg.Address, o.cfg.Socket = tcp.Addr().String(), sock
	srv, err := New(o.cfg, sched, o.cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 2)
	for _, l := range []net.Listener{tcp, unix} {
		go func(l net.Listener) { served <- srv.Serve(l) }(l)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		srv.Shutdown(ctx)
		for i := 0; i < 2; i++ {
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
		sched.Close()
		if checked != nil {
			checked.AssertSize(t, 0)
		}
	})
	return &testNode{srv: srv, sched: sched, tcp: "grpc://" + tcp.Addr().String(), unix: "grpc+unix://" + sock}
}

// transports names the node's two client addresses.
func (n *testNode) transports() map[string]string {
	return map[string]string{"tcp": n.tcp, "unix": n.unix}
}

// client opens a Flight client to addr, closed at cleanup (before the
// node's own cleanup, which was registered earlier).
func client(t testing.TB, addr string) flight.Client {
	t.Helper()
	c, err := dial.Client(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testCtx is a context that ends when the test would otherwise hang.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return ctx
}

// path is the descriptor of a call to name.
func path(name string) *flight.FlightDescriptor {
	return &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{name}}
}

// result is what a call returned: the output schema and batches. The
// caller releases the batches with release.
type result struct {
	schema *arrow.Schema
	recs   []arrow.RecordBatch
}

func (r *result) release() {
	for _, rec := range r.recs {
		rec.Release()
	}
}

// exchange calls the function of desc on in (all of one schema, or schema
// alone when in is empty) over one DoExchange, writing while it reads, as
// a streaming client does. hdr are header key/value pairs.
func exchange(ctx context.Context, c flight.Client, desc *flight.FlightDescriptor, schema *arrow.Schema, in []arrow.RecordBatch, hdr ...string) (*result, error) {
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, hdr...))
	defer cancel()
	stream, err := c.DoExchange(ctx)
	if err != nil {
		return nil, err
	}
	wrote := make(chan error, 1)
	go func() {
		w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
		w.SetFlightDescriptor(desc)
		err := func() error {
			for _, rec := range in {
				if err := w.Write(rec); err != nil {
					return err
				}
			}
			return w.Close()
		}()
		if err == nil {
			err = stream.CloseSend()
		}
		if errors.Is(err, io.EOF) {
			err = nil // the server ended the call; Recv says why
		}
		wrote <- err
	}()
	res, err := readAll(stream)
	cancel() // unblocks the writer if the read failed first
	if werr := <-wrote; err == nil && werr != nil {
		res.release()
		return nil, werr
	}
	return res, err
}

// readAll reads an exchange's output schema and every batch to the end.
func readAll(stream flight.DataStreamReader) (*result, error) {
	rdr, err := flight.NewRecordReader(stream)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	res := &result{schema: rdr.Schema()}
	for rdr.Next() {
		rec := rdr.RecordBatch()
		rec.Retain()
		res.recs = append(res.recs, rec)
	}
	if err := rdr.Err(); err != nil {
		res.release()
		return nil, err
	}
	return res, nil
}

// rawExchange sends msgs as they are, ends the stream and drains the
// replies; it returns the call's error, nil when it succeeded.
func rawExchange(ctx context.Context, c flight.Client, msgs []*flight.FlightData, hdr ...string) error {
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, hdr...))
	defer cancel()
	stream, err := c.DoExchange(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the call; Recv says why
		}
	}
	if err := stream.CloseSend(); err != nil {
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

// capture is a DataStreamWriter that keeps copies of the messages sent.
type capture struct{ msgs []*flight.FlightData }

func (c *capture) Send(fd *flight.FlightData) error {
	c.msgs = append(c.msgs, &flight.FlightData{
		FlightDescriptor: fd.FlightDescriptor,
		DataHeader:       bytes.Clone(fd.DataHeader),
		DataBody:         bytes.Clone(fd.DataBody),
		AppMetadata:      bytes.Clone(fd.AppMetadata),
	})
	return nil
}

// ipcMessages encodes schema and recs as the FlightData messages a Go
// client sends: the schema first, then one message per batch. desc, if not
// nil, rides on the first.
func ipcMessages(t testing.TB, desc *flight.FlightDescriptor, schema *arrow.Schema, recs ...arrow.RecordBatch) []*flight.FlightData {
	t.Helper()
	var c capture
	w := flight.NewRecordWriter(&c, ipc.WithSchema(schema))
	w.SetFlightDescriptor(desc)
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return c.msgs
}

// sendSchema sends desc and schema's IPC message, in one message or (alone
// true, as pyarrow and C++ do) the descriptor first. It returns a writer for
// the batches that does not send the schema again: a client's side of a
// lockstep exchange, independent of the server's own writer.
func sendSchema(stream flight.DataStreamWriter, desc *flight.FlightDescriptor, schema *arrow.Schema, alone bool) (*ipc.Writer, error) {
	p := ipc.GetSchemaPayload(schema, memory.DefaultAllocator)
	defer p.Release()
	meta := p.Meta()
	defer meta.Release()
	var body bytes.Buffer
	if err := p.SerializeBody(&body); err != nil {
		return nil, err
	}
	if alone {
		if err := stream.Send(&flight.FlightData{FlightDescriptor: desc}); err != nil {
			return nil, err
		}
		desc = nil
	}
	if err := stream.Send(&flight.FlightData{FlightDescriptor: desc, DataHeader: meta.Bytes(), DataBody: body.Bytes()}); err != nil {
		return nil, err
	}
	return ipc.NewWriterWithPayloadWriter(&clientPayloads{stream: stream, skip: 1}, ipc.WithSchema(schema)), nil
}

// clientPayloads sends IPC payloads as FlightData messages, dropping the
// first skip of them (the schema, which sendSchema sent already).
type clientPayloads struct {
	stream flight.DataStreamWriter
	skip   int
	body   bytes.Buffer
}

func (c *clientPayloads) Start() error { return nil }
func (c *clientPayloads) Close() error { return nil }

func (c *clientPayloads) WritePayload(p ipc.Payload) error {
	if c.skip > 0 {
		c.skip--
		return nil
	}
	meta := p.Meta()
	defer meta.Release()
	c.body.Reset()
	if err := p.SerializeBody(&c.body); err != nil {
		return err
	}
	return c.stream.Send(&flight.FlightData{DataHeader: meta.Bytes(), DataBody: c.body.Bytes()})
}

// int64Schema is one nullable int64 column named x.
var int64Schema = arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)

// int64Batch is n rows start, start+1, ... with every 7th row null when
// nulls is set, allocated from the Go heap (the client's memory).
func int64Batch(start int64, n int, nulls bool) arrow.RecordBatch {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		if nulls && i%7 == 6 {
			b.AppendNull()
			continue
		}
		b.UnsafeAppend(start + int64(i))
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(int64Schema, []arrow.Array{col}, int64(n))
}

// int64Batches is one batch per size, numbering rows across batches.
func int64Batches(sizes ...int) []arrow.RecordBatch {
	var out []arrow.RecordBatch
	var start int64
	for _, n := range sizes {
		out = append(out, int64Batch(start, n, true))
		start += int64(n)
	}
	return out
}

func releaseAll(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// checkIdentity fails the test unless out is the identity of in: one
// column named identity of in's type, one batch per input batch with the
// same values and nulls.
func checkIdentity(t testing.TB, res *result, in []arrow.RecordBatch) {
	t.Helper()
	if res.schema.NumFields() != 1 || res.schema.Field(0).Name != "identity" {
		t.Fatalf("output schema %s, want one field named identity", res.schema)
	}
	if len(res.recs) != len(in) {
		t.Fatalf("%d output batches for %d input batches", len(res.recs), len(in))
	}
	for i := range in {
		got, want := res.recs[i].Column(0), in[i].Column(0)
		if res.recs[i].NumRows() != in[i].NumRows() || !array.Equal(got, want) {
			t.Fatalf("batch %d: got %d rows %v, want %d rows %v", i, got.Len(), abbrev(got), want.Len(), abbrev(want))
		}
	}
}

// abbrev prints at most the first 20 values of a column.
func abbrev(a arrow.Array) string {
	if a.Len() > 20 {
		s := array.NewSlice(a, 0, 20)
		defer s.Release()
		return s.String() + "..."
	}
	return a.String()
}

// goodCall runs a small identity call on c and fails the test unless it
// comes back right: what every bad input is followed by.
func goodCall(t testing.TB, ctx context.Context, c flight.Client) {
	t.Helper()
	in := int64Batches(3, 0, 5)
	defer releaseAll(in)
	res, err := exchange(ctx, c, path("identity"), int64Schema, in)
	if err != nil {
		t.Fatalf("a good call after the bad one failed: %v", err)
	}
	defer res.release()
	checkIdentity(t, res, in)
}
