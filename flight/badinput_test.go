// Bad input: every malformed or refused call gets its documented gRPC code,
// and the same server serves a good call right after.
package flight

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// mixedBatch is n rows of schema, whose columns may be float64 or int32
// (value v) or utf8 ("x").
func mixedBatch(schema *arrow.Schema, n int, v float64) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i, f := range schema.Fields() {
		for r := 0; r < n; r++ {
			switch f.Type.ID() {
			case arrow.FLOAT64:
				b.Field(i).(*array.Float64Builder).Append(v)
			case arrow.INT32:
				b.Field(i).(*array.Int32Builder).Append(int32(v))
			case arrow.STRING:
				b.Field(i).(*array.StringBuilder).Append("x")
			}
		}
	}
	return b.NewRecordBatch()
}

// reframe is m's IPC header with another descriptor and body.
func reframe(m *flight.FlightData, desc *flight.FlightDescriptor, body []byte) *flight.FlightData {
	return &flight.FlightData{FlightDescriptor: desc, DataHeader: m.DataHeader, DataBody: body}
}

func fields(types ...arrow.DataType) *arrow.Schema {
	fs := make([]arrow.Field, len(types))
	for i, t := range types {
		fs[i] = arrow.Field{Name: string(rune('a' + i)), Type: t, Nullable: true}
	}
	return arrow.NewSchema(fs, nil)
}

var (
	f64  = arrow.PrimitiveTypes.Float64
	i32  = arrow.PrimitiveTypes.Int32
	utf8 = arrow.BinaryTypes.String
)

// call is a one-batch exchange of n rows of schema's columns.
func call(ctx context.Context, c flight.Client, desc *flight.FlightDescriptor, schema *arrow.Schema, n int, v float64, hdr ...string) error {
	rec := mixedBatch(schema, n, v)
	defer rec.Release()
	res, err := exchange(ctx, c, desc, schema, []arrow.RecordBatch{rec}, hdr...)
	if err == nil {
		res.release()
	}
	return err
}

func TestBadInput(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.unix)

	// Valid IPC messages to take apart: the schema, then a batch.
	rec := int64Batch(0, 1000, false)
	defer rec.Release()
	valid := ipcMessages(t, path("identity"), int64Schema, rec)
	if len(valid) != 2 {
		t.Fatalf("%d IPC messages for a schema and one batch, want 2", len(valid))
	}
	schemaMsg, recMsg := valid[0], valid[1]
	truncated := reframe(recMsg, nil, recMsg.DataBody[:len(recMsg.DataBody)/2])
	noDesc := reframe(schemaMsg, nil, schemaMsg.DataBody)
	haversine := fields(f64, f64, f64, f64)

	cases := []struct {
		name string
		call func(ctx context.Context) error
		want codes.Code
		msg  string // a secondary check: the message names this
	}{
		{"unknown function", func(ctx context.Context) error {
			return call(ctx, c, path("no_such_function"), haversine, 3, 1)
		}, codes.NotFound, "no_such_function"},
		{"too few arguments", func(ctx context.Context) error {
			return call(ctx, c, path("haversine_km"), fields(f64, f64, f64), 3, 1)
		}, codes.InvalidArgument, "expected 4 arguments, got 3"},
		{"too many arguments", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64, f64), 3, 1)
		}, codes.InvalidArgument, "expected 1 arguments, got 2"},
		{"wrong type", func(ctx context.Context) error {
			return call(ctx, c, path("haversine_km"), fields(f64, utf8, f64, f64), 3, 1)
		}, codes.InvalidArgument, "argument 1"},
		{"wrong type last", func(ctx context.Context) error {
			return call(ctx, c, path("geohash_encode"), fields(f64, f64, f64), 3, 1)
		}, codes.InvalidArgument, "argument 2"},
		{"no columns", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), arrow.NewSchema(nil, nil), 0, 0)
		}, codes.InvalidArgument, "no columns"},
		{"descriptor CMD", func(ctx context.Context) error {
			return call(ctx, c, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("identity")}, haversine, 3, 1)
		}, codes.InvalidArgument, "PATH"},
		{"descriptor with 2 path parts", func(ctx context.Context) error {
			return call(ctx, c, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"identity", "x"}}, haversine, 3, 1)
		}, codes.InvalidArgument, "PATH"},
		{"descriptor with an empty name", func(ctx context.Context) error {
			return call(ctx, c, path(""), haversine, 3, 1)
		}, codes.InvalidArgument, "PATH"},
		{"no descriptor", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{noDesc, recMsg})
		}, codes.InvalidArgument, "descriptor"},
		{"garbage IPC", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{{
				FlightDescriptor: path("identity"),
				DataHeader:       []byte("this is not an arrow message header"),
				DataBody:         []byte{0xde, 0xad, 0xbe, 0xef},
			}})
		}, codes.InvalidArgument, ""},
		{"garbage IPC after the schema", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{schemaMsg, {DataHeader: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, DataBody: []byte{1}}})
		}, codes.InvalidArgument, ""},
		{"a batch before the schema", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{reframe(recMsg, path("identity"), recMsg.DataBody)})
		}, codes.InvalidArgument, ""},
		{"truncated batch body", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{schemaMsg, truncated})
		}, codes.InvalidArgument, "batch 0"},
		{"truncated second batch", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{schemaMsg, recMsg, truncated})
		}, codes.InvalidArgument, "batch 1"},
		{"a second schema mid-stream", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{schemaMsg, recMsg, noDesc, recMsg})
		}, codes.InvalidArgument, ""},
		{"stream ends after the descriptor", func(ctx context.Context) error {
			return rawExchange(ctx, c, []*flight.FlightData{{FlightDescriptor: path("identity")}})
		}, codes.InvalidArgument, "schema"},
		{"empty stream", func(ctx context.Context) error {
			return rawExchange(ctx, c, nil)
		}, codes.InvalidArgument, "schema"},
		{"rows-per-task not a number", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64), 3, 1, HeaderRowsPerTask, "abc")
		}, codes.InvalidArgument, HeaderRowsPerTask},
		{"rows-per-task zero", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64), 3, 1, HeaderRowsPerTask, "0")
		}, codes.InvalidArgument, HeaderRowsPerTask},
		{"on-error maybe", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64), 3, 1, HeaderOnError, "maybe")
		}, codes.InvalidArgument, "maybe"},
		{"retries too many", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64), 3, 1, HeaderRetries, "1000")
		}, codes.InvalidArgument, HeaderRetries},
		{"timeout negative", func(ctx context.Context) error {
			return call(ctx, c, path("identity"), fields(f64), 3, 1, HeaderTimeoutMs, "-5")
		}, codes.InvalidArgument, HeaderTimeoutMs},
		{"geohash precision 13", func(ctx context.Context) error {
			return call(ctx, c, path("geohash_encode"), fields(f64, f64, i32), 5, 13)
		}, codes.InvalidArgument, "precision 13"},
		{"GetFlightInfo unknown function", func(ctx context.Context) error {
			_, err := c.GetFlightInfo(ctx, path("no_such_function"))
			return err
		}, codes.NotFound, ""},
		{"GetFlightInfo CMD", func(ctx context.Context) error {
			_, err := c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("identity")})
			return err
		}, codes.InvalidArgument, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			err := tc.call(ctx)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not say %q", msg, tc.msg)
			}
			goodCall(t, ctx, c)
		})
	}
}

// TestGeohashInRange is the positive control of the precision case above:
// precision 12 works.
func TestGeohashInRange(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.tcp)
	schema := fields(f64, f64, i32)
	rec := mixedBatch(schema, 2, 12)
	defer rec.Release()
	res, err := exchange(testCtx(t), c, path("geohash_encode"), schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	got := res.recs[0].Column(0).(*array.String)
	if got.Len() != 2 || len(got.Value(0)) != 12 {
		t.Fatalf("got %v, want two 12-character geohashes", got)
	}
}

// TestMessageTooLarge: a batch over the server's MaxMessageBytes is
// ResourceExhausted; a batch under it still works.
func TestMessageTooLarge(t *testing.T) {
	n := startNode(t, nodeOptions{cfg: Config{MaxMessageBytes: 1 << 20}})
	for tr, addr := range n.transports() {
		t.Run(tr, func(t *testing.T) {
			c := client(t, addr)
			ctx := testCtx(t)
			big := int64Batch(0, 256<<10, false) // 2 MiB of values
			defer big.Release()
			_, err := exchange(ctx, c, path("identity"), int64Schema, []arrow.RecordBatch{big})
			if got := status.Code(err); got != codes.ResourceExhausted {
				t.Fatalf("got %v (%v), want ResourceExhausted", got, err)
			}
			goodCall(t, ctx, c)
		})
	}
}

// TestClientCancelsMidStream: a client that goes away mid-call leaves the
// server serving; its memory is checked at shutdown.
func TestClientCancelsMidStream(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for tr, addr := range n.transports() {
		t.Run(tr, func(t *testing.T) {
			c := client(t, addr)
			ctx, cancel := context.WithCancel(testCtx(t))
			stream, err := c.DoExchange(ctx)
			if err != nil {
				t.Fatal(err)
			}
			w, err := sendSchema(stream, path("identity"), int64Schema, true)
			if err != nil {
				t.Fatal(err)
			}
			rdr, err := flight.NewRecordReader(stream)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				rec := int64Batch(int64(i)*1000, 1000, true)
				if err := w.Write(rec); err != nil {
					t.Fatal(err)
				}
				rec.Release()
			}
			if !rdr.Next() { // the call is under way on the server
				t.Fatalf("no output: %v", rdr.Err())
			}
			cancel()
			for rdr.Next() {
			}
			if got := status.Code(rdr.Err()); got != codes.Canceled {
				t.Fatalf("after cancel the stream ended with %v (%v), want Canceled", got, rdr.Err())
			}
			rdr.Release()
			goodCall(t, testCtx(t), c)
		})
	}
}

// TestOverCapacity: with MaxCalls calls open, one more is
// ResourceExhausted; once one ends, calls work again.
func TestOverCapacity(t *testing.T) {
	n := startNode(t, nodeOptions{sched: scheduler.Config{MaxCalls: 1}})
	c := client(t, n.unix)
	ctx := testCtx(t)
	stream, err := c.DoExchange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sendSchema(stream, path("identity"), int64Schema, true)
	if err != nil {
		t.Fatal(err)
	}
	rdr, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	rec := int64Batch(0, 10, false)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if !rdr.Next() { // the first call holds the only slot now
		t.Fatalf("first call: %v", rdr.Err())
	}
	err = call(ctx, c, path("identity"), fields(f64), 3, 1)
	if got := status.Code(err); got != codes.ResourceExhausted {
		t.Fatalf("second call: got %v (%v), want ResourceExhausted", got, err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if rdr.Next() || rdr.Err() != nil {
		t.Fatalf("first call did not end cleanly: %v", rdr.Err())
	}
	goodCall(t, ctx, c)
}

// blockFunc is a test function that returns only when its call ends.
type blockFunc struct{}

func (blockFunc) Name() string { return "block" }
func (blockFunc) Signature() udf.Signature {
	return udf.Signature{Args: []arrow.Field{{Name: "x", Type: f64}}, Result: arrow.Field{Name: "block", Type: f64}}
}
func (blockFunc) Bind([]arrow.DataType) (arrow.DataType, error) { return f64, nil }
func (blockFunc) Eval(ctx context.Context, _ memory.Allocator, _ []arrow.Array) (arrow.Array, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// failFunc is a test function that always fails, as a buggy UDF does.
type failFunc struct{ blockFunc }

var errUDF = errors.New("the function raised")

func (failFunc) Name() string { return "fail" }
func (failFunc) Eval(context.Context, memory.Allocator, []arrow.Array) (arrow.Array, error) {
	return nil, errUDF
}

// TestCallFailures: a call past quiver-timeout-ms is DeadlineExceeded, a
// function that fails is Internal with the batch and rows in the message.
func TestCallFailures(t *testing.T) {
	cat := udf.NewBuiltinCatalog()
	for _, f := range []udf.Func{blockFunc{}, failFunc{}} {
		if err := cat.Register(f); err != nil {
			t.Fatal(err)
		}
	}
	n := startNode(t, nodeOptions{cat: cat})
	c := client(t, n.unix)
	ctx := testCtx(t)
	err := call(ctx, c, path("block"), fields(f64), 3, 1, HeaderTimeoutMs, "20")
	if got := status.Code(err); got != codes.DeadlineExceeded {
		t.Fatalf("timeout: got %v (%v), want DeadlineExceeded", got, err)
	}
	goodCall(t, ctx, c)
	err = call(ctx, c, path("fail"), fields(f64), 3, 1)
	if got := status.Code(err); got != codes.Internal {
		t.Fatalf("failing function: got %v (%v), want Internal", got, err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "rows [0, 3)") {
		t.Errorf("message %q does not give the row range", msg)
	}
	goodCall(t, ctx, c)
	// With on-error=null the same failure is per-row data, not an error.
	rec := mixedBatch(fields(f64), 3, 1)
	defer rec.Release()
	res, err := exchange(ctx, c, path("fail"), fields(f64), []arrow.RecordBatch{rec}, HeaderOnError, "null")
	if err != nil {
		t.Fatalf("on-error=null: %v", err)
	}
	defer res.release()
	out := res.recs[0]
	if out.NumCols() != 2 || out.Column(0).NullN() != 3 || out.Column(1).NullN() != 0 {
		t.Fatalf("on-error=null: got %v, want 3 null rows, each with a message", out)
	}
}

func TestToken(t *testing.T) {
	const token = "s3cret"
	n := startNode(t, nodeOptions{cfg: Config{Token: token}})
	c := client(t, n.tcp)
	for _, tc := range []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"wrong token", "nope", codes.Unauthenticated},
		{"right token", token, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := dial.WithToken(testCtx(t), tc.token)
			in := int64Batches(5)
			defer releaseAll(in)
			res, err := exchange(ctx, c, path("identity"), int64Schema, in)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("DoExchange: got %v (%v), want %v", got, err, tc.want)
			}
			if err == nil {
				checkIdentity(t, res, in)
				res.release()
			}
			_, err = c.GetFlightInfo(ctx, path("identity"))
			if got := status.Code(err); got != tc.want {
				t.Fatalf("GetFlightInfo: got %v (%v), want %v", got, err, tc.want)
			}
			stream, err := c.DoAction(ctx, &flight.Action{Type: ActionHealth})
			if err == nil {
				_, err = stream.Recv()
			}
			if got := status.Code(err); got != tc.want {
				t.Fatalf("DoAction: got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
	// A token in another scheme is not accepted either.
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "authorization", "Basic "+token)
	if _, err := c.GetFlightInfo(ctx, path("identity")); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Basic auth: got %v, want Unauthenticated", err)
	}
}

// TestCompressedBomb: a compressed batch that inflates past the node's
// message limit is InvalidArgument, before anything is allocated for it.
func TestCompressedBomb(t *testing.T) {
	n := startNode(t, nodeOptions{cfg: Config{MaxMessageBytes: 256 << 10}})
	c := client(t, n.unix)
	ctx := testCtx(t)
	zeros := int64Batch(0, 1<<20, false) // 8 MiB of values, a few KiB compressed
	defer zeros.Release()
	col := zeros.Column(0).(*array.Int64).Int64Values()
	for i := range col {
		col[i] = 0
	}
	var msgs capture
	w := flight.NewRecordWriter(&msgs, ipc.WithSchema(int64Schema), ipc.WithZstd())
	w.SetFlightDescriptor(path("identity"))
	if err := w.Write(zeros); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if size := len(msgs.msgs[1].DataBody); size > 256<<10 {
		t.Fatalf("the compressed batch is %d bytes, over the message limit itself", size)
	}
	err := rawExchange(ctx, c, msgs.msgs)
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("got %v (%v), want InvalidArgument", got, err)
	}
	goodCall(t, ctx, c)
}
