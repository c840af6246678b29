// End-to-end tests of the Flight service: a real node on TCP and a unix
// socket, Go Flight clients, calls, catalog and actions.
package flight

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/udf"
)

func TestIdentityRoundTrip(t *testing.T) {
	n := startNode(t, nodeOptions{})
	cases := []struct {
		name  string
		sizes []int
		hdr   []string
	}{
		{"several batches", []int{1000, 1, 0, 20000, 333}, nil},
		{"one row", []int{1}, nil},
		{"zero rows", []int{0}, nil},
		{"no batches", nil, nil},
		{"small tasks", []int{1000, 999}, []string{HeaderRowsPerTask, "7"}},
	}
	for tr, addr := range n.transports() {
		c := client(t, addr)
		for _, tc := range cases {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				in := int64Batches(tc.sizes...)
				defer releaseAll(in)
				res, err := exchange(testCtx(t), c, path("identity"), int64Schema, in, tc.hdr...)
				if err != nil {
					t.Fatal(err)
				}
				defer res.release()
				checkIdentity(t, res, in)
				if got := res.schema.Field(0).Type; !arrow.TypeEqual(got, arrow.PrimitiveTypes.Int64) {
					t.Fatalf("output type %s, want int64", got)
				}
			})
		}
	}
}

// TestIdentityStrings round-trips a variable-width type, with a slice
// offset on the client side.
func TestIdentityStrings(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.unix)
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues([]string{"junk", "a", "", "héllo", "z"}, []bool{true, true, true, true, true})
	b.AppendNull()
	full := b.NewArray()
	defer full.Release()
	col := array.NewSlice(full, 1, 6)
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer rec.Release()
	res, err := exchange(testCtx(t), c, path("identity"), schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	if len(res.recs) != 1 || !array.Equal(res.recs[0].Column(0), col) {
		t.Fatalf("got %v, want %v", res.recs, col)
	}
}

// TestLockstep is a client that sends the schema alone and waits for the
// output schema before it sends any data, then writes one batch and reads
// one, five times (pyarrow's reader.schema after writer.begin, DuckDB
// Airport). A server that sent its schema lazily would hang it; the
// context's deadline turns that into a failure.
func TestLockstep(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for tr, addr := range n.transports() {
		for _, alone := range []bool{true, false} {
			name := tr + "/descriptor with schema"
			if alone {
				name = tr + "/descriptor alone"
			}
			t.Run(name, func(t *testing.T) {
				c := client(t, addr)
				stream, err := c.DoExchange(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				w, err := sendSchema(stream, path("identity"), int64Schema, alone)
				if err != nil {
					t.Fatal(err)
				}
				rdr, err := flight.NewRecordReader(stream) // no data sent yet
				if err != nil {
					t.Fatalf("reading the output schema before sending data: %v", err)
				}
				defer rdr.Release()
				if s := rdr.Schema(); s.NumFields() != 1 || s.Field(0).Name != "identity" || !arrow.TypeEqual(s.Field(0).Type, arrow.PrimitiveTypes.Int64) {
					t.Fatalf("output schema %s, want identity: int64", s)
				}
				for i := 0; i < 5; i++ {
					in := int64Batch(int64(100*i), 10+i, true)
					if err := w.Write(in); err != nil {
						t.Fatalf("write %d: %v", i, err)
					}
					if !rdr.Next() {
						in.Release()
						t.Fatalf("read %d: no batch: %v", i, rdr.Err())
					}
					if !array.Equal(rdr.RecordBatch().Column(0), in.Column(0)) {
						t.Fatalf("read %d: %v, want %v", i, rdr.RecordBatch().Column(0), in.Column(0))
					}
					in.Release()
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if err := stream.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if rdr.Next() {
					t.Fatal("a batch more than was sent")
				}
				if err := rdr.Err(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestHaversineKnownValues(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.tcp)
	f := func(name string) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	schema := arrow.NewSchema([]arrow.Field{f("a"), f("b"), f("c"), f("d")}, nil)
	rows := [][4]float64{
		{0, 0, 0, 1},                       // one degree of the equator
		{90, 0, -90, 0},                    // pole to pole
		{48.8566, 2.3522, 48.8566, 2.3522}, // a point to itself
		{0, 0, 0, 180},                     // antipodes on the equator
	}
	want := []float64{
		6371 * math.Pi / 180,
		6371 * math.Pi,
		0,
		6371 * math.Pi,
	}
	bld := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer bld.Release()
	for _, r := range rows {
		for i, v := range r {
			bld.Field(i).(*array.Float64Builder).Append(v)
		}
	}
	for i := 0; i < 4; i++ { // a null argument gives a null row
		if i == 2 {
			bld.Field(i).AppendNull()
		} else {
			bld.Field(i).(*array.Float64Builder).Append(1)
		}
	}
	rec := bld.NewRecordBatch()
	defer rec.Release()
	res, err := exchange(testCtx(t), c, path("haversine_km"), schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	if len(res.recs) != 1 || res.recs[0].NumRows() != int64(len(want)+1) {
		t.Fatalf("got %d batches, want one of %d rows", len(res.recs), len(want)+1)
	}
	got := res.recs[0].Column(0).(*array.Float64)
	for i, w := range want {
		if got.IsNull(i) || math.Abs(got.Value(i)-w) > 1e-9*math.Max(1, w) {
			t.Errorf("row %d %v: got %s km, want %v", i, rows[i], got.ValueStr(i), w)
		}
	}
	if got.IsValid(len(want)) {
		t.Errorf("row with a null argument: got %v, want null", got.Value(len(want)))
	}
}

// TestBigBatch sends one 64 MiB batch (8M int64 rows) in one message, over
// gRPC's default 4 MiB limit, as pyarrow does.
func TestBigBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB each way")
	}
	n := startNode(t, nodeOptions{})
	c := client(t, n.unix)
	const rows = 8 << 20
	vals := make([]int64, rows)
	for i := range vals {
		vals[i] = int64(i) * 3
	}
	data := array.NewData(arrow.PrimitiveTypes.Int64, rows,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, 0, 0)
	col := array.NewInt64Data(data)
	data.Release()
	defer col.Release()
	rec := array.NewRecordBatch(int64Schema, []arrow.Array{col}, rows)
	defer rec.Release()
	res, err := exchange(testCtx(t), c, path("identity"), int64Schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	if len(res.recs) != 1 || res.recs[0].NumRows() != rows {
		t.Fatalf("got %d batches, want one of %d rows", len(res.recs), rows)
	}
	got := res.recs[0].Column(0).(*array.Int64).Int64Values()
	for i, v := range got {
		if v != vals[i] {
			t.Fatalf("row %d: got %d, want %d", i, v, vals[i])
		}
	}
}

func TestGetFlightInfo(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for tr, addr := range n.transports() {
		c := client(t, addr)
		t.Run(tr+"/haversine_km", func(t *testing.T) {
			info, err := c.GetFlightInfo(testCtx(t), path("haversine_km"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"lat1", "lon1", "lat2", "lon2", "haversine_km"}
			if s.NumFields() != len(want) {
				t.Fatalf("schema %s, want fields %v", s, want)
			}
			for i, name := range want {
				if f := s.Field(i); f.Name != name || !arrow.TypeEqual(f.Type, arrow.PrimitiveTypes.Float64) {
					t.Fatalf("field %d is %s, want %s: float64", i, f, name)
				}
			}
			md := s.Metadata()
			if i := md.FindKey(MetaInputCount); i < 0 || md.Values()[i] != "4" {
				t.Fatalf("schema metadata %v, want %s = 4", md, MetaInputCount)
			}
			if info.TotalRecords != 4 {
				t.Fatalf("total_records = %d, want 4 (the number of inputs)", info.TotalRecords)
			}
			if d := info.FlightDescriptor; d == nil || d.Type != flight.DescriptorPATH || len(d.Path) != 1 || d.Path[0] != "haversine_km" {
				t.Fatalf("descriptor %v, want PATH [haversine_km]", d)
			}
		})
	}
	// Every function has the layout: inputs, then the output.
	c := client(t, n.tcp)
	for _, fn := range udf.Builtins() {
		info, err := c.GetFlightInfo(testCtx(t), path(fn.Name()))
		if err != nil {
			t.Fatalf("%s: %v", fn.Name(), err)
		}
		s, err := flight.DeserializeSchema(info.Schema, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		sig := fn.Signature()
		if s.NumFields() != len(sig.Args)+1 || int(info.TotalRecords) != len(sig.Args) {
			t.Fatalf("%s: %d fields and total_records %d, want %d inputs + 1 output", fn.Name(), s.NumFields(), info.TotalRecords, len(sig.Args))
		}
		if out := s.Field(len(sig.Args)); !arrow.TypeEqual(out.Type, sig.Result.Type) {
			t.Fatalf("%s: output field %s, want %s", fn.Name(), out, sig.Result)
		}
	}
}

func TestListFlights(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for tr, addr := range n.transports() {
		t.Run(tr, func(t *testing.T) {
			c := client(t, addr)
			stream, err := c.ListFlights(testCtx(t), &flight.Criteria{})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for {
				info, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, info.FlightDescriptor.Path[0])
			}
			var want []string
			for _, fn := range udf.Builtins() {
				want = append(want, fn.Name())
			}
			sort.Strings(want)
			if len(names) != len(want) {
				t.Fatalf("%d flights %v, want %d %v", len(names), names, len(want), want)
			}
			for i := range want {
				if names[i] != want[i] {
					t.Fatalf("flights %v, want %v (sorted by name)", names, want)
				}
			}
		})
	}
}

// action runs DoAction and returns the single result's body.
func action(t *testing.T, c flight.Client, typ string) ([]byte, error) {
	t.Helper()
	stream, err := c.DoAction(testCtx(t), &flight.Action{Type: typ})
	if err != nil {
		return nil, err
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("%s: a second result or an error after the result: %v", typ, err)
	}
	return res.Body, nil
}

func TestActions(t *testing.T) {
	n := startNode(t, nodeOptions{})
	for tr, addr := range n.transports() {
		c := client(t, addr)
		t.Run(tr+"/protocol_version", func(t *testing.T) {
			body, err := action(t, c, ActionProtocolVersion)
			if err != nil {
				t.Fatal(err)
			}
			if len(body) != 1 || body[0] != 0x02 {
				t.Fatalf("protocol_version = %x, want 02", body)
			}
		})
		t.Run(tr+"/health", func(t *testing.T) {
			body, err := action(t, c, ActionHealth)
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]any
			if err := json.Unmarshal(body, &h); err != nil {
				t.Fatalf("health %q: %v", body, err)
			}
			if h["status"] != "serving" || h["version"] != testVersion {
				t.Fatalf("health = %s, want status serving and version %s", body, testVersion)
			}
		})
		t.Run(tr+"/unknown", func(t *testing.T) {
			if _, err := action(t, c, "no_such_action"); status.Code(err) != codes.Unimplemented {
				t.Fatalf("unknown action: %v, want Unimplemented", err)
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		stream, err := client(t, n.unix).ListActions(testCtx(t), &flight.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for {
			a, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[a.Type] = true
		}
		for _, typ := range []string{ActionProtocolVersion, ActionHealth, ActionClusterStatus, ActionRoom} {
			if !got[typ] {
				t.Fatalf("ListActions %v lacks %s", got, typ)
			}
		}
	})
}

func TestClusterStatus(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.unix)
	in := int64Batches(10, 20)
	defer releaseAll(in)
	res, err := exchange(testCtx(t), c, path("identity"), int64Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	res.release()
	body, err := action(t, c, ActionClusterStatus)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Nodes []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("cluster_status %q: %v", body, err)
	}
	if len(raw.Nodes) != 1 {
		t.Fatalf("cluster_status has %d nodes, want 1: %s", len(raw.Nodes), body)
	}
	// The keys docs/protocol.md documents.
	for _, k := range []string{"address", "socket", "version", "status", "uptime_s", "pid", "rss_bytes", "functions",
		"executors", "inflight_calls", "inflight_tasks", "calls_total", "calls_failed", "batches_total",
		"rows_total", "tasks_total", "nulled_rows_total"} {
		if _, ok := raw.Nodes[0][k]; !ok {
			t.Errorf("cluster_status node lacks %q: %s", k, body)
		}
	}
	var cs ClusterStatus
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	node := cs.Nodes[0]
	if "grpc://"+node.Address != n.tcp || "grpc+unix://"+node.Socket != n.unix {
		t.Errorf("address %q socket %q, want the node's %s and %s", node.Address, node.Socket, n.tcp, n.unix)
	}
	if node.Status != "serving" || node.Version != testVersion {
		t.Errorf("status %q version %q, want serving %s", node.Status, node.Version, testVersion)
	}
	if len(node.Functions) != len(udf.Builtins()) || node.Executors != n.sched.Executors() {
		t.Errorf("%d functions and %d executors, want %d and %d", len(node.Functions), node.Executors, len(udf.Builtins()), n.sched.Executors())
	}
	if node.CallsTotal != 1 || node.Batches != 2 || node.Rows != 30 || node.CallsActive != 0 {
		t.Errorf("calls %d, batches %d, rows %d, in flight %d; want 1, 2, 30, 0", node.CallsTotal, node.Batches, node.Rows, node.CallsActive)
	}
}
