// Fuzz targets for what the node parses from clients: IPC input on
// DoExchange and call option headers.
package flight

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/ipccheck"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// memStream is a DoExchange server stream over messages in memory: Recv
// yields msgs then io.EOF, Send drops what the server writes. Methods the
// handler must not use are left to the nil embedded interface (a panic).
type memStream struct {
	flight.FlightService_DoExchangeServer
	ctx  context.Context
	msgs []*flight.FlightData
	sent int
}

func (s *memStream) Context() context.Context { return s.ctx }

func (s *memStream) Recv() (*flight.FlightData, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *memStream) Send(*flight.FlightData) error {
	s.sent++
	return nil
}

// SendMsg is gRPC's: the message through the node's codec, both ways.
func (s *memStream) SendMsg(v any) error {
	c := newCodec()
	data, err := c.Marshal(v)
	if err != nil {
		return err
	}
	defer data.Free()
	var fd flight.FlightData
	if err := c.Unmarshal(data, &fd); err != nil {
		return err
	}
	return s.Send(&fd)
}

// fuzzFuncs are the functions a fuzz input may call, by its first byte.
var fuzzFuncs = func() []string {
	var names []string
	for _, f := range udf.Builtins() {
		names = append(names, f.Name())
	}
	return names
}()

// maxFuzzMessages bounds the messages one input decodes to.
const maxFuzzMessages = 16

// decodeMessages turns fuzz bytes into a call: the first byte picks the
// function (the descriptor rides on the first message) and, divided by the
// number of functions, the rows per task (fuzzContext); then each message
// is uvarint(len(header)) header uvarint(len(body)) body.
func decodeMessages(data []byte) []*flight.FlightData {
	if len(data) == 0 {
		return nil
	}
	name := fuzzFuncs[int(data[0])%len(fuzzFuncs)]
	data = data[1:]
	take := func() []byte {
		n, k := binary.Uvarint(data)
		if k <= 0 {
			out := data
			data = nil
			return out
		}
		data = data[k:]
		if n > uint64(len(data)) {
			n = uint64(len(data))
		}
		out := data[:n]
		data = data[n:]
		return out
	}
	var msgs []*flight.FlightData
	for len(data) > 0 && len(msgs) < maxFuzzMessages {
		msgs = append(msgs, &flight.FlightData{DataHeader: take(), DataBody: take()})
	}
	if len(msgs) == 0 {
		msgs = append(msgs, &flight.FlightData{})
	}
	msgs[0].FlightDescriptor = path(name)
	return msgs
}

// fuzzContext is the incoming context of a call from data: the header
// quiver-rows-per-task when data's first byte asks for one.
func fuzzContext(ctx context.Context, data []byte) context.Context {
	if len(data) == 0 || int(data[0]) < len(fuzzFuncs) {
		return ctx
	}
	rows := strconv.Itoa(int(data[0]) / len(fuzzFuncs))
	return metadata.NewIncomingContext(ctx, metadata.Pairs(HeaderRowsPerTask, rows))
}

// encodeMessages is the inverse of decodeMessages, for seeds.
func encodeMessages(fn int, msgs []*flight.FlightData) []byte {
	out := []byte{byte(fn)}
	for _, m := range msgs {
		out = binary.AppendUvarint(out, uint64(len(m.DataHeader)))
		out = append(out, m.DataHeader...)
		out = binary.AppendUvarint(out, uint64(len(m.DataBody)))
		out = append(out, m.DataBody...)
	}
	return out
}

// fuzzSeeds are valid calls of every function, a few other types and
// compressed bodies, then a few broken ones, for the fuzzer to mutate.
func fuzzSeeds(t testing.TB) (valid, broken [][]byte) {
	fnIndex := func(name string) int {
		for i, n := range fuzzFuncs {
			if n == name {
				return i
			}
		}
		t.Fatalf("no function %s", name)
		return 0
	}
	build := func(schema *arrow.Schema, fill func(b *array.RecordBuilder)) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		fill(b)
		return b.NewRecordBatch()
	}
	encode := func(fn string, schema *arrow.Schema, opts []ipc.Option, recs ...arrow.RecordBatch) []byte {
		var c capture
		w := flight.NewRecordWriter(&c, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
		for _, r := range recs {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
			r.Release()
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return encodeMessages(fnIndex(fn), c.msgs)
	}
	var seeds [][]byte
	seeds = append(seeds,
		encode("identity", int64Schema, nil, int64Batch(0, 10, true), int64Batch(10, 3, false)),
		encode("identity", int64Schema, []ipc.Option{ipc.WithZstd()}, int64Batch(0, 40, true)),
		encode("identity", int64Schema, []ipc.Option{ipc.WithLZ4()}, int64Batch(0, 40, false)),
	)
	strs := fields(utf8, utf8)
	seeds = append(seeds, encode("levenshtein", strs, nil, build(strs, func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).AppendValues([]string{"kitten", "", "flaw"}, nil)
		b.Field(1).(*array.StringBuilder).AppendValues([]string{"sitting", "a", ""}, []bool{true, true, false})
	})))
	seeds = append(seeds, encode("jaro_winkler", strs, nil, build(strs, func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).AppendValues([]string{"martha", "dwayne"}, nil)
		b.Field(1).(*array.StringBuilder).AppendValues([]string{"marhta", "duane"}, nil)
	})))
	one := fields(utf8)
	seeds = append(seeds, encode("sha256_hex", one, nil, build(one, func(b *array.RecordBuilder) {
		b.Field(0).(*array.StringBuilder).AppendValues([]string{"abc", "", "héllo"}, []bool{true, true, true})
		b.Field(0).AppendNull()
	})))
	hav := fields(f64, f64, f64, f64)
	seeds = append(seeds, encode("haversine_km", hav, nil, build(hav, func(b *array.RecordBuilder) {
		for i := 0; i < 4; i++ {
			b.Field(i).(*array.Float64Builder).AppendValues([]float64{0, 1, 45}, []bool{true, i != 2, true})
		}
	})))
	geo := fields(f64, f64, i32)
	seeds = append(seeds, encode("geohash_encode", geo, nil, build(geo, func(b *array.RecordBuilder) {
		b.Field(0).(*array.Float64Builder).AppendValues([]float64{48.85, -33.9}, nil)
		b.Field(1).(*array.Float64Builder).AppendValues([]float64{2.35, 151.2}, nil)
		b.Field(2).(*array.Int32Builder).AppendValues([]int32{12, 5}, nil)
	})))
	nested := fields(arrow.ListOf(arrow.PrimitiveTypes.Int64))
	seeds = append(seeds, encode("identity", nested, nil, build(nested, func(b *array.RecordBuilder) {
		lb := b.Field(0).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Int64Builder)
		lb.Append(true)
		vb.AppendValues([]int64{1, 2, 3}, nil)
		lb.AppendNull()
		lb.Append(true)
	})))
	st := fields(arrow.StructOf(arrow.Field{Name: "a", Type: utf8, Nullable: true}, arrow.Field{Name: "b", Type: f64}))
	seeds = append(seeds, encode("identity", st, nil, build(st, func(b *array.RecordBuilder) {
		sb := b.Field(0).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.StringBuilder).Append("x")
		sb.FieldBuilder(1).(*array.Float64Builder).Append(1.5)
		sb.AppendNull()
		sb.FieldBuilder(0).(*array.StringBuilder).AppendNull()
		sb.FieldBuilder(1).(*array.Float64Builder).Append(0)
	})))
	// Cut messages: a truncated body and a schema alone.
	full := seeds[0]
	return seeds, [][]byte{full[:len(full)-20], full[:len(full)/3], {0}, {0, 4, 1, 2, 3, 4, 0}}
}

// TestFuzzSeeds checks that the valid seeds are calls that succeed, so the
// fuzzer starts from inputs that reach the functions.
func TestFuzzSeeds(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sched, err := scheduler.New(scheduler.Config{Executors: 2, Mem: mem}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Close()
	srv, err := New(Config{Mem: mem}, sched, udf.NewBuiltinCatalog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	valid, _ := fuzzSeeds(t)
	for i, s := range valid {
		msgs := decodeMessages(s)
		stream := &memStream{ctx: context.Background(), msgs: msgs}
		if err := srv.DoExchange(stream); err != nil {
			t.Fatalf("seed %d (%s): %v", i, msgs[0].FlightDescriptor.Path[0], err)
		}
		if stream.sent != len(msgs) { // the schema, then one output per input batch
			t.Fatalf("seed %d: %d messages out for %d in", i, stream.sent, len(msgs))
		}
	}
}

// FuzzExchangeInput feeds arbitrary FlightData messages to the reader under
// DoExchange and to the whole handler. Nothing may panic or crash the
// process, every failure must be classified as malformed input
// (InvalidArgument), and no Arrow memory may be left behind.
func FuzzExchangeInput(f *testing.F) {
	valid, broken := fuzzSeeds(f)
	for _, s := range append(valid, broken...) {
		f.Add(s)
	}
	cat := udf.NewBuiltinCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		// arrow-go v18.8.0 loses track of the buffer it inflates a
		// compressed body into when inflating fails (ipcSource.buffer
		// panics before releasing it). The Go heap reclaims it, but the
		// checked allocator counts it, so memory is checked only for
		// inputs without a compressed batch.
		checkMem := !hasCompressedBatch(decodeMessages(data))

		// The reader alone: openReader, then the source to the end.
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		srv := &Server{cfg: Config{Mem: mem, MaxMessageBytes: DefaultMaxMessageBytes}}
		rdr, err := openReader(&memStream{ctx: context.Background(), msgs: decodeMessages(data)}, srv)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("openReader: %v is not errMalformed", err)
			}
		} else {
			src := &source{rdr: rdr}
			for {
				rec, err := src.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, errMalformed) {
						t.Fatalf("source.Next: %v is not errMalformed", err)
					}
					break
				}
				rec.Release()
			}
			src.Close()
		}
		if n := mem.CurrentAlloc(); checkMem && n != 0 {
			t.Fatalf("the reader left %d bytes allocated", n)
		}

		// The whole handler, through the scheduler and the output writer.
		// Its reader goroutine may outlive it (as it may outlive Run), so
		// it gets a copy of the input, which the fuzzer reuses.
		mem = memory.NewCheckedAllocator(memory.NewGoAllocator())
		sched, err := scheduler.New(scheduler.Config{Executors: 2, Mem: mem}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if srv, err = New(Config{Mem: mem}, sched, cat, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		err = srv.DoExchange(&memStream{ctx: fuzzContext(ctx, data), msgs: decodeMessages(bytes.Clone(data))})
		sched.Close()
		if c := status.Code(err); c != codes.OK && c != codes.InvalidArgument {
			t.Fatalf("DoExchange: %v, want OK or InvalidArgument", err)
		}
		if checkMem && !drained(mem) {
			t.Fatalf("DoExchange left %d bytes allocated", mem.CurrentAlloc())
		}
	})
}

// drained waits until mem holds nothing, for at most 5 s (less than the
// time after which the fuzzer calls an input hung): the reader goroutine of
// a call releases what it holds just after the call returns, and signals
// nothing when it is done.
func drained(mem *memory.CheckedAllocator) bool {
	deadline := time.Now().Add(5 * time.Second)
	for mem.CurrentAlloc() != 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Microsecond)
	}
	return true
}

// hasCompressedBatch reports whether a message is a record or dictionary
// batch with a compressed body.
func hasCompressedBatch(msgs []*flight.FlightData) bool {
	for _, m := range msgs {
		if ipccheck.Compressed(m.DataHeader) {
			return true
		}
	}
	return false
}

// FuzzCallOptions feeds arbitrary header values to callOptions: it must
// never panic, refuse with InvalidArgument, and accept only values in range.
func FuzzCallOptions(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("100", "3", "null", "5000")
	f.Add("abc", "-1", "maybe", "0")
	f.Add("2147483648", "101", "RAISE", " 5")
	f.Add("9223372036854775808", "+3", "raise\x00", "1e3")
	f.Add("0x10", "00", "raise", "86400000")
	f.Fuzz(func(t *testing.T, rows, retries, onError, timeout string) {
		md := metadata.MD{}
		for k, v := range map[string]string{HeaderRowsPerTask: rows, HeaderRetries: retries, HeaderOnError: onError, HeaderTimeoutMs: timeout} {
			md.Append(k, v)
		}
		o, err := callOptions(metadata.NewIncomingContext(context.Background(), md))
		if err != nil {
			if codeOf(err) != codes.InvalidArgument || !errors.Is(err, udf.ErrInvalidArgument) {
				t.Fatalf("callOptions: %v is not InvalidArgument", err)
			}
			return
		}
		if o.RowsPerTask < 0 || o.RowsPerTask > maxRowsPerTask || o.Retries < 0 || o.Retries > maxRetries ||
			o.Timeout < 0 || o.Timeout > 24*time.Hour {
			t.Fatalf("callOptions accepted %+v from %q %q %q %q", o, rows, retries, onError, timeout)
		}
		if o.OnError != scheduler.OnErrorRaise && o.OnError != scheduler.OnErrorNull {
			t.Fatalf("on-error %d from %q", o.OnError, onError)
		}
		if rows != "" {
			if n, err := strconv.ParseInt(rows, 10, 64); err != nil || n != o.RowsPerTask {
				t.Fatalf("rows-per-task %q read as %d", rows, o.RowsPerTask)
			}
		}
	})
}
