// Tests of sessions: many small requests on one DoExchange, answered by
// request number, with a Go client.
package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	sessionDesc   = &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(SessionCommand)}
	sessionSchema = arrow.NewSchema([]arrow.Field{{Name: "payload", Type: arrow.BinaryTypes.LargeBinary, Nullable: true}}, nil)
)

// sessionAnswer is one answer: its metadata and its rows.
type sessionAnswer struct {
	meta map[string]any
	rows [][]byte
}

func (a sessionAnswer) code() string {
	if e, ok := a.meta["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

// testSession is a session stream opened by a Go client.
type testSession struct {
	t      testing.TB
	stream flight.FlightService_DoExchangeClient
	w      *flight.Writer
	rdr    *flight.Reader
}

func openSession(t testing.TB, ctx context.Context, c flight.Client, schema *arrow.Schema) *testSession {
	t.Helper()
	stream, err := c.DoExchange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(sessionDesc)
	return &testSession{t: t, stream: stream, w: w}
}

// send writes one request: meta (JSON) and rows as the payload column.
func (s *testSession) send(meta map[string]any, rows ...[]byte) error {
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.LargeBinary)
	defer b.Release()
	for _, r := range rows {
		b.Append(r)
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(sessionSchema, []arrow.Array{col}, int64(len(rows)))
	defer rec.Release()
	body, err := json.Marshal(meta)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.w.WriteWithAppMetadata(rec, body)
}

// next reads one answer.
func (s *testSession) next() (sessionAnswer, error) {
	if s.rdr == nil {
		rdr, err := flight.NewRecordReader(s.stream)
		if err != nil {
			return sessionAnswer{}, err
		}
		s.rdr = rdr
		s.t.Cleanup(rdr.Release)
	}
	if !s.rdr.Next() {
		if err := s.rdr.Err(); err != nil {
			return sessionAnswer{}, err
		}
		return sessionAnswer{}, io.EOF
	}
	var a sessionAnswer
	if err := json.Unmarshal(s.rdr.LatestAppMetadata(), &a.meta); err != nil {
		return a, err
	}
	col := s.rdr.RecordBatch().Column(0).(*array.LargeBinary)
	for i := 0; i < col.Len(); i++ {
		a.rows = append(a.rows, slices.Clone(col.Value(i)))
	}
	return a, nil
}

// answers reads n answers and returns them by request number; a request
// answered twice fails the test.
func (s *testSession) answers(n int) map[int]sessionAnswer {
	s.t.Helper()
	out := map[int]sessionAnswer{}
	for len(out) < n {
		a, err := s.next()
		if err != nil {
			s.t.Fatalf("after %d of %d answers: %v", len(out), n, err)
		}
		req := int(a.meta["req"].(float64))
		if _, dup := out[req]; dup {
			s.t.Fatalf("request %d answered twice", req)
		}
		out[req] = a
	}
	return out
}

// end closes the sending side and reads to the end of the stream.
func (s *testSession) end() error {
	if err := s.w.Close(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := s.stream.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := s.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestSessionRequests(t *testing.T) {
	n, _ := startObjectNode(t, 1<<20)
	ctx := testCtx(t)
	c := client(t, n.unix)
	s := openSession(t, ctx, c, sessionSchema)
	id := strings.Repeat("ab", 16)
	id2 := strings.Repeat("cd", 16)
	if err := s.send(map[string]any{"op": "put", "req": 100, "id": id2}, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if a := s.answers(1)[100]; a.code() != "" {
		t.Fatalf("put: %v", a.meta)
	}
	reqs := []struct {
		meta map[string]any
		rows [][]byte
	}{
		{map[string]any{"op": "call", "req": 1, "fn": "identity"}, [][]byte{[]byte("a"), []byte(""), []byte("ccc")}},
		{map[string]any{"op": "put", "req": 2, "id": id}, [][]byte{[]byte("hello, "), []byte("world")}},
		{map[string]any{"op": "get", "req": 3, "id": id}, nil},
		{map[string]any{"op": "put", "req": 4, "id": id}, [][]byte{[]byte("again")}},
		{map[string]any{"op": "release", "req": 5, "id": id}, nil},
		{map[string]any{"op": "get", "req": 6, "id": id}, nil},
		{map[string]any{"op": "release", "req": 7, "id": id}, nil},
		{map[string]any{"op": "fly", "req": 8}, nil},
		{map[string]any{"op": "call", "req": 9, "fn": "no_such_function"}, [][]byte{[]byte("x")}},
		{map[string]any{"op": "call", "req": 10, "fn": "sha256_hex"}, [][]byte{[]byte("x")}},
		{map[string]any{"op": "call", "req": 11, "fn": "identity", "rows_per_task": -1}, [][]byte{[]byte("x")}},
		{map[string]any{"op": "put", "req": 12}, [][]byte{[]byte("no id: the node picks one")}},
		{map[string]any{"op": "put", "req": 13, "id": "big"}, [][]byte{make([]byte, 2<<20)}},
		{map[string]any{"op": "call", "req": 14, "fn": "identity", "jobs": true}, nil},
		{map[string]any{"op": "put", "req": 15, "ids": []string{"m1", "m2", "big2", id2}},
			[][]byte{[]byte("one"), []byte("two"), make([]byte, 2<<20), []byte("taken")}},
		{map[string]any{"op": "get", "req": 16, "id": "m2"}, nil},
		{map[string]any{"op": "put", "req": 17, "ids": []string{"m3"}}, [][]byte{[]byte("a"), []byte("b")}},
	}
	for _, r := range reqs {
		if err := s.send(r.meta, r.rows...); err != nil {
			t.Fatal(err)
		}
	}
	got := s.answers(len(reqs))
	if open := n.srv.ClusterStatus().Nodes[0].Sessions; open != 1 {
		t.Errorf("cluster_status while a session is open: %d sessions", open)
	}
	if err := s.end(); err != nil {
		t.Fatalf("ending the session: %v", err)
	}
	want := map[int]string{1: "", 2: "", 3: "", 4: "AlreadyExists", 5: "", 6: "NotFound", 7: "NotFound",
		8: "InvalidArgument", 9: "NotFound", 10: "InvalidArgument", 11: "InvalidArgument", 12: "",
		13: "ResourceExhausted", 14: "", 15: "", 16: "", 17: "InvalidArgument"}
	for req, code := range want {
		if got[req].code() != code {
			t.Errorf("request %d: code %q, want %q (answer %v)", req, got[req].code(), code, got[req].meta)
		}
	}
	if g := got[1].rows; len(g) != 3 || string(g[0]) != "a" || string(g[1]) != "" || string(g[2]) != "ccc" {
		t.Errorf("call identity: rows %q", g)
	}
	if got[2].meta["id"] != id {
		t.Errorf("put: answered id %v, want %s", got[2].meta["id"], id)
	}
	if g := got[3].rows; len(g) != 1 || string(g[0]) != "hello, world" {
		t.Errorf("get: rows %q, want the put's rows joined", g)
	}
	if nid, _ := got[12].meta["id"].(string); len(nid) != 32 {
		t.Errorf("put without an id: answered id %q", nid)
	}
	if len(got[14].rows) != 0 {
		t.Errorf("call on no rows: %d rows back", len(got[14].rows))
	}
	// A put of several objects stores each row as its own object and names
	// the ones it could not store, each with its own code.
	failed, _ := got[15].meta["failed"].([]any)
	failedCodes := map[string]string{}
	for _, f := range failed {
		m := f.(map[string]any)
		failedCodes[m["id"].(string)] = m["code"].(string)
	}
	if len(failedCodes) != 2 || failedCodes["big2"] != "ResourceExhausted" || failedCodes[id2] != "AlreadyExists" {
		t.Errorf("put of several: failed %v, want big2 over capacity and %s taken", failed, id2)
	}
	if g := got[16].rows; len(g) != 1 || string(g[0]) != "two" {
		t.Errorf("get of an object of a put of several: %q", g)
	}
	for _, id := range []string{"m1", "m2", id2} {
		if err := releaseObject(ctx, c, id); err != nil {
			t.Errorf("release %s: %v", id, err)
		}
	}
	// The object put without an id stays until released, like DoPut's.
	if err := releaseObject(ctx, c, got[12].meta["id"].(string)); err != nil {
		t.Errorf("releasing the object a session put: %v", err)
	}
	goodCall(t, ctx, c)
}

// A session's requests run concurrently within its window; every request
// is answered exactly once, with its own rows, however many are sent
// before the first answer is read.
func TestSessionManyRequests(t *testing.T) {
	n, _ := startObjectNode(t, 1<<20)
	ctx := testCtx(t)
	c := client(t, n.unix)
	s := openSession(t, ctx, c, sessionSchema)
	const reqs = 300
	sent := make(chan error, 1)
	go func() {
		for i := 1; i <= reqs; i++ {
			rows := make([][]byte, i%7)
			for j := range rows {
				rows[j] = []byte(fmt.Sprintf("%d/%d", i, j))
			}
			if err := s.send(map[string]any{"op": "call", "req": i, "fn": "identity", "jobs": true}, rows...); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	got := s.answers(reqs)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= reqs; i++ {
		a := got[i]
		if a.code() != "" || len(a.rows) != i%7 {
			t.Fatalf("request %d: %v, %d rows", i, a.meta, len(a.rows))
		}
		for j, r := range a.rows {
			if string(r) != fmt.Sprintf("%d/%d", i, j) {
				t.Fatalf("request %d row %d: %q", i, j, r)
			}
		}
	}
	if err := s.end(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionBadInput(t *testing.T) {
	n, _ := startObjectNode(t, 1<<20)
	ctx := testCtx(t)
	c := client(t, n.unix)
	t.Run("schema", func(t *testing.T) {
		s := openSession(t, ctx, c, int64Schema)
		rec := int64Batch(0, 2, false)
		defer rec.Release()
		s.w.WriteWithAppMetadata(rec, []byte(`{"op":"call","req":1,"fn":"identity"}`))
		err := s.end()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "large_binary") {
			t.Fatalf("a session of int64: %v, want InvalidArgument naming large_binary", err)
		}
	})
	for name, meta := range map[string][]byte{"not json": []byte("op=call"), "no op": []byte(`{"req": 1}`), "none": nil,
		"unknown field": []byte(`{"op": "put", "req": 1, "idz": ["a"]}`), "two values": []byte(`{"op": "get", "req": 1} {}`)} {
		t.Run(name, func(t *testing.T) {
			s := openSession(t, ctx, c, sessionSchema)
			b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.LargeBinary)
			defer b.Release()
			col := b.NewArray()
			defer col.Release()
			rec := array.NewRecordBatch(sessionSchema, []arrow.Array{col}, 0)
			defer rec.Release()
			s.w.WriteWithAppMetadata(rec, meta)
			err := s.end()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("metadata %q: %v, want InvalidArgument", meta, err)
			}
		})
	}
	goodCall(t, ctx, c)
}

// Draining ends an open session with Unavailable, after its requests in
// flight are answered, so that a node with idle clients stops promptly.
func TestSessionEndsOnDrain(t *testing.T) {
	n, _ := startObjectNode(t, 1<<20)
	ctx := testCtx(t)
	s := openSession(t, ctx, client(t, n.unix), sessionSchema)
	if err := s.send(map[string]any{"op": "call", "req": 1, "fn": "identity"}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if a := s.answers(1)[1]; a.code() != "" {
		t.Fatalf("call before the drain: %v", a.meta)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		n.srv.Shutdown(sctx)
	}()
	_, err := s.next()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("an open session at drain: %v, want Unavailable", err)
	}
	<-done
}

// FuzzSessionRequest: any metadata is a request or an InvalidArgument,
// never a panic.
func FuzzSessionRequest(f *testing.F) {
	for _, seed := range []string{`{"op":"call","req":1,"fn":"identity","rows_per_task":3,"retries":0,"jobs":true}`,
		`{"op":"put","req":2,"id":"abc"}`, `{"req":1}`, `null`, `[]`, `{"op":1}`, `{"op":"get","req":-1}`, ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, meta []byte) {
		req, err := parseSessionRequest(meta)
		if err != nil {
			if codeOf(err) != codes.InvalidArgument {
				t.Fatalf("%q: %v is not InvalidArgument", meta, err)
			}
			return
		}
		if req.Op == "" {
			t.Fatalf("%q: accepted without an op", meta)
		}
	})
}
