// Tests against live nodes: real Flight servers on temp unix sockets, as
// flight/helpers_test.go builds them.
package loadtest

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/arrowio"
	"github.com/quiver-udf/quiver/internal/record"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// hang bounds every run here; reaching it is a hang, never a pass.
const hang = 30 * time.Second

// node is a live Flight server with its scheduler.
type node struct {
	addr string // grpc+unix:///...
	stop func() // shuts the node down and waits; also run at cleanup
}

// startNode serves cat (nil: the built-ins) on a temp unix socket with a
// checked allocator, recording into rec if not nil. Cleanup (or stop)
// shuts it down, closes rec and checks that no Arrow memory is left.
func startNode(t *testing.T, cat *udf.Catalog, rec *record.Recorder) *node {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	if cat == nil {
		cat = udf.NewBuiltinCatalog()
	}
	sched, err := scheduler.New(scheduler.Config{Executors: 4, Mem: mem}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "q.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := flight.New(flight.Config{Mem: mem, Socket: sock, Recorder: rec}, sched, cat, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sched.Close()
		if err := rec.Close(); err != nil {
			t.Error(err)
		}
		mem.AssertSize(t, 0)
	}
	t.Cleanup(stop)
	return &node{addr: "grpc+unix://" + sock, stop: stop}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != rep.Succeeded+rep.Failed {
		t.Fatalf("sent %d != succeeded %d + failed %d", rep.Sent, rep.Succeeded, rep.Failed)
	}
	return rep
}

func TestClosedLoop(t *testing.T) {
	n := startNode(t, nil, nil)
	for _, fn := range []struct{ name, spec string }{
		{"identity", "rows=1000,cols=int64:1,batches=3"},
		{"haversine_km", "rows=2000,cols=float64:4"},
		{"geohash_encode", "rows=100,cols=float64:2,int32:1"},
	} {
		rep := run(t, Config{Target: n.addr, Function: fn.name, Generate: fn.spec, Concurrency: 4,
			Duration: 300 * ms, Warmup: 50 * ms, RowsPerTask: 500})
		if rep.Failed != 0 || rep.Sent == 0 {
			t.Fatalf("%s: %d sent, %d failed: %v", fn.name, rep.Sent, rep.Failed, rep.ErrorSamples)
		}
		spec, _ := ParseSpec(fn.spec)
		if rep.Rows != rep.Succeeded*int64(spec.Rows) || rep.Bytes <= rep.Rows || rep.Streams != 4 || rep.Mode != "closed" {
			t.Fatalf("%s: report %+v", fn.name, rep)
		}
		if rep.LatencyUS.P50 <= 0 || rep.LatencyUS.P50 > rep.LatencyUS.P99 || rep.LatencyUS.P99 > rep.LatencyUS.Max {
			t.Fatalf("%s: latency %+v", fn.name, rep.LatencyUS)
		}
		if rep.ElapsedS < 0.3 || rep.RowsPerS <= 0 || rep.MBPerS <= 0 {
			t.Fatalf("%s: elapsed %v, rates %v rows/s %v MB/s", fn.name, rep.ElapsedS, rep.RowsPerS, rep.MBPerS)
		}
	}
}

// TestErrorsByCode: an unknown function fails every request with
// NotFound; wrong argument types with InvalidArgument. The streams are
// reopened each time.
func TestErrorsByCode(t *testing.T) {
	n := startNode(t, nil, nil)
	for fn, code := range map[string]string{"no_such_function": "NotFound", "haversine_km": "InvalidArgument"} {
		rep := run(t, Config{Target: n.addr, Function: fn, Generate: "rows=10,cols=int64:1", Concurrency: 2, Duration: 100 * ms})
		if rep.Sent == 0 || rep.Failed != rep.Sent || rep.Errors[code] != rep.Sent || rep.ErrorRate != 1 {
			t.Fatalf("%s: sent %d, failed %d, errors %v", fn, rep.Sent, rep.Failed, rep.Errors)
		}
		if rep.Streams < rep.Sent || rep.ErrorSamples[code] == "" {
			t.Fatalf("%s: %d streams for %d failed requests, sample %q", fn, rep.Streams, rep.Sent, rep.ErrorSamples[code])
		}
	}
	// Nothing listens there: Unavailable, not a hang or an error of Run.
	rep := run(t, Config{Target: "grpc+unix://" + filepath.Join(t.TempDir(), "none.sock"), Function: "identity",
		Generate: "rows=10,cols=int64:1", Duration: 50 * ms})
	if rep.Errors["Unavailable"] == 0 || rep.Failed != rep.Sent {
		t.Fatalf("no node: errors %v", rep.Errors)
	}
	for name, cfg := range map[string]Config{
		"bad address": {Target: "http://x", Function: "identity", Generate: "cols=int64:1", Duration: ms},
		"bad spec":    {Target: n.addr, Function: "identity", Generate: "cols=int8:1", Duration: ms},
		"no input":    {Target: n.addr, Function: "identity", Duration: ms},
		"speed, no replay": {Target: n.addr, Function: "identity", Generate: "cols=int64:1", Duration: ms,
			Speed: 1},
		"no recording": {Target: n.addr, Function: "identity", Replay: t.TempDir()},
	} {
		if _, err := Run(testCtx(t), cfg); err == nil {
			t.Errorf("%s: Run passed", name)
		}
	}
}

// sleepFunc is identity after 20 ms: a target with a known capacity.
type sleepFunc struct{}

func (sleepFunc) Name() string { return "sleep20" }
func (sleepFunc) Signature() udf.Signature {
	return udf.Signature{Args: []arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}},
		Result: arrow.Field{Name: "sleep20", Type: arrow.PrimitiveTypes.Int64}}
}
func (sleepFunc) Bind(args []arrow.DataType) (arrow.DataType, error) { return args[0], nil }
func (sleepFunc) Eval(ctx context.Context, _ memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	t := time.NewTimer(20 * ms)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	args[0].Retain()
	return args[0], nil
}

// TestOpenLoopLatencyGrows: one stream to a function that takes 20 ms a
// batch serves about 50 batches/s. Below that rate latency is the service
// time; above it the requests queue behind each other, and since latency
// counts from when each was due, the median grows several times over.
func TestOpenLoopLatencyGrows(t *testing.T) {
	cat := udf.NewBuiltinCatalog()
	if err := cat.Register(sleepFunc{}); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, cat, nil)
	cfg := Config{Target: n.addr, Function: "sleep20", Generate: "rows=100,cols=int64:1", Concurrency: 1, Duration: 500 * ms}
	cfg.Rate = 10
	below := run(t, cfg)
	cfg.Rate = 100
	above := run(t, cfg)
	for _, rep := range []*Report{below, above} {
		if rep.Failed != 0 || rep.Mode != "open" || rep.Missed != 0 {
			t.Fatalf("rate %v: report %+v", rep.Rate, rep)
		}
	}
	if below.Sent != 5 || above.Sent != 50 {
		t.Fatalf("sent %d at 10/s and %d at 100/s over 0.5 s, want 5 and 50", below.Sent, above.Sent)
	}
	if r := float64(above.LatencyUS.P50) / float64(below.LatencyUS.P50); r < 2 {
		t.Fatalf("median latency %d us above capacity, %d us below: ratio %.1f, want > 2",
			above.LatencyUS.P50, below.LatencyUS.P50, r)
	}
	// The closed loop at the same concurrency does not see the queue.
	cfg.Rate = 0
	closed := run(t, cfg)
	if r := float64(above.LatencyUS.P50) / float64(closed.LatencyUS.P50); r < 2 {
		t.Fatalf("closed-loop median %d us, open-loop above capacity %d us", closed.LatencyUS.P50, above.LatencyUS.P50)
	}
}

// TestRecordReplay records the traffic of a load test on one node, replays
// the recording once against a second recording node, and checks that the
// second recording holds byte-identical batches in the same order. Then a
// bounded recording keeps only its newest calls, and still replays.
func TestRecordReplay(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	recA, err := record.New(record.Config{Dir: dirA}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, nil, recA)
	for _, cfg := range []Config{
		{Target: a.addr, Function: "identity", Generate: "rows=300,cols=utf8:1,batches=5", Concurrency: 3, Duration: 150 * ms},
		{Target: a.addr, Function: "haversine_km", Generate: "rows=50,cols=float64:4", Duration: 50 * ms},
	} {
		if rep := run(t, cfg); rep.Failed != 0 {
			t.Fatalf("%s: %v", cfg.Function, rep.ErrorSamples)
		}
	}
	a.stop()

	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	want, err := record.Load(dirA, "identity", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Release()
	if len(want.Batches) < 3 {
		t.Fatalf("only %d batches recorded", len(want.Batches))
	}

	recB, err := record.New(record.Config{Dir: dirB}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, nil, recB)
	rep := run(t, Config{Target: b.addr, Function: "identity", Replay: dirA, Mem: mem})
	if rep.Sent != int64(len(want.Batches)) || rep.Failed != 0 || rep.DurationS != 0 {
		t.Fatalf("one pass of %d batches: sent %d, failed %d", len(want.Batches), rep.Sent, rep.Failed)
	}
	// The function's folder replays too, at the recorded pacing.
	rep = run(t, Config{Target: b.addr, Function: "identity", Replay: filepath.Join(dirA, "identity"), Speed: 1,
		Concurrency: 4, Mem: mem})
	if rep.Failed != 0 || rep.Mode != "open" || rep.Sent != int64(len(want.Batches)) {
		t.Fatalf("paced replay: %+v", rep)
	}
	b.stop()
	got, err := record.Load(dirB, "identity", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	if len(got.Batches) < len(want.Batches) {
		t.Fatalf("replayed %d batches of %d", len(got.Batches), len(want.Batches))
	}
	for i, w := range want.Batches {
		if !bytes.Equal(encode(t, got.Batches[i].Rec), encode(t, w.Rec)) {
			t.Fatalf("replayed batch %d differs from recorded batch (call %d seq %d)", i, w.Call, w.Seq)
		}
	}

	// Bounded: far more traffic than 256 KiB; the oldest calls go.
	dirC := t.TempDir()
	recC, err := record.New(record.Config{Dir: dirC, MaxBytes: 256 << 10}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	c := startNode(t, nil, recC)
	for i := 0; i < 6; i++ { // 12 calls, closed loop: far more than 256 KiB of 8 KB batches however busy the machine
		run(t, Config{Target: c.addr, Function: "identity", Generate: "rows=1000,cols=int64:1", Concurrency: 2,
			Duration: 100 * ms})
	}
	c.stop()
	if size := dirSize(t, dirC); size > 256<<10 {
		t.Fatalf("the recording holds %d bytes, over its bound", size)
	}
	if st := recC.Stats(); st.Evicted == 0 {
		t.Fatalf("nothing evicted: %+v", st)
	}
	kept, err := record.Load(dirC, "identity", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Release()
	// The two calls of the last run overlap, so the newest kept batch is
	// from one of them, whichever reached the bound first.
	st := recC.Stats()
	if len(kept.Batches) == 0 || kept.Batches[0].Call == 1 || int64(kept.Batches[len(kept.Batches)-1].Call) < st.Calls-1 {
		t.Fatalf("%d batches kept of %d calls: the oldest calls should be gone, the newest kept", len(kept.Batches), st.Calls)
	}
	d := startNode(t, nil, nil)
	rep = run(t, Config{Target: d.addr, Function: "identity", Replay: dirC, Mem: mem})
	if rep.Failed != 0 || rep.Sent != int64(len(kept.Batches)) {
		t.Fatalf("replaying the bounded recording: sent %d of %d, failed %d", rep.Sent, len(kept.Batches), rep.Failed)
	}
}

func encode(t *testing.T, rec arrow.RecordBatch) []byte {
	t.Helper()
	b, err := arrowio.StreamBytes(rec, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
