// Tests of the same-host lane: its frames (round trips, fuzzing) and a
// lane served beside a real node: hello, a put and a stamped get, the
// generation table handed over, release, and refusals.
package flight

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"
)

// laneBody is the rows layout of rows.
func laneBody(rows ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(rows)))
	off := uint64(0)
	b = binary.LittleEndian.AppendUint64(b, 0)
	for _, r := range rows {
		off += uint64(len(r))
		b = binary.LittleEndian.AppendUint64(b, off)
	}
	for _, r := range rows {
		b = append(b, r...)
	}
	return b
}

func laneRequestFrame(meta map[string]any, body []byte) []byte {
	h, _ := json.Marshal(meta)
	f := make([]byte, lanePrefix)
	f[0] = laneRequest
	binary.LittleEndian.PutUint32(f[4:], uint32(len(h)))
	binary.LittleEndian.PutUint64(f[8:], uint64(len(body)))
	return append(append(f, h...), body...)
}

func TestLaneRowsRoundTrip(t *testing.T) {
	rec, err := laneRows(laneBody([]byte("a"), nil, []byte("ccc")))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	col := rec.Column(0).(*array.LargeBinary)
	if col.Len() != 3 || string(col.Value(0)) != "a" || len(col.Value(1)) != 0 || string(col.Value(2)) != "ccc" {
		t.Fatalf("rows: %v", col)
	}
	// An answer of a slice with a null: offsets from 0, the null listed.
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.LargeBinary)
	defer b.Release()
	b.AppendValues([][]byte{[]byte("skip"), []byte("x"), nil, []byte("yz")}, []bool{true, true, false, true})
	full := b.NewArray()
	defer full.Release()
	part := array.NewSlice(full, 1, 4)
	defer part.Release()
	ans := array.NewRecordBatch(sessionOutSchema, []arrow.Array{part}, 3)
	defer ans.Release()
	bufs, err := laneAnswerFrame(ans, []byte(`{"req":7}`))
	if err != nil {
		t.Fatal(err)
	}
	frame := append(append([]byte{}, bufs[0]...), bufs[1]...)
	f, err := readLaneFrame(bufio.NewReader(bytesReader(frame)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Req   int   `json:"req"`
		Nulls []int `json:"nulls"`
	}
	if err := json.Unmarshal(f.header, &meta); err != nil || meta.Req != 7 || len(meta.Nulls) != 1 || meta.Nulls[0] == 0 {
		t.Fatalf("header %s: %v", f.header, err)
	}
	got, err := laneRows(f.body)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	g := got.Column(0).(*array.LargeBinary)
	if g.Len() != 3 || string(g.Value(0)) != "x" || len(g.Value(1)) != 0 || string(g.Value(2)) != "yz" {
		t.Fatalf("answer rows: %v", g)
	}
}

type sliceReader struct{ b []byte }

func bytesReader(b []byte) *sliceReader { return &sliceReader{b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("EOF")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// FuzzLaneFrame: any bytes are a frame and rows, or an error; never a
// panic, and rows that parse can be read whole.
func FuzzLaneFrame(f *testing.F) {
	f.Add(laneRequestFrame(map[string]any{"op": "get", "req": 1}, laneBody([]byte("ab"), []byte("c"))))
	f.Add(laneRequestFrame(map[string]any{"op": "get", "req": 1}, nil))
	f.Add([]byte{2, 0, 0, 0, 2, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, '{', '}', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := readLaneFrame(bytesReader(b), 1<<16)
		if err != nil {
			return
		}
		rec, err := laneRows(fr.body)
		if err != nil {
			return
		}
		defer rec.Release()
		col := rec.Column(0).(*array.LargeBinary)
		total := 0
		for i := 0; i < col.Len(); i++ {
			total += len(col.Value(i))
		}
		if total > len(fr.body) {
			t.Fatalf("rows of %d bytes from a body of %d", total, len(fr.body))
		}
	})
}

// startLane serves a lane beside an object node; it returns the node and
// the lane's key (from the lane action over the unix socket).
func startLane(t *testing.T) (*testNode, string, string) {
	t.Helper()
	n, _ := startObjectNode(t, 1<<20)
	path := filepath.Join(t.TempDir(), "q.lane")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go n.srv.ServeLane(lis, path)
	ctx := testCtx(t)
	var info LaneInfo
	for _, addr := range []string{n.tcp, n.unix} {
		stream, err := client(t, addr).DoAction(ctx, &flight.Action{Type: ActionLane})
		if err != nil {
			t.Fatal(err)
		}
		res, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		info = LaneInfo{}
		if err := json.Unmarshal(res.Body, &info); err != nil {
			t.Fatal(err)
		}
		if addr == n.tcp && info.Path != "" {
			t.Fatalf("the lane action over TCP told %+v", info)
		}
	}
	if info.Path != path || info.Key == "" {
		t.Fatalf("the lane action over the socket told %+v, want path %s and a key", info, path)
	}
	return n, path, info.Key
}

// dialLane connects and says hello with key; it returns the connection,
// the welcome's header and the descriptor passed with it (-1: none), or
// the refusal's header.
func dialLane(t *testing.T, path, key string) (*net.UnixConn, byte, []byte, int) {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, _ := json.Marshal(map[string]string{"key": key})
	if _, err := c.Write(laneControlFrame(laneHello, h)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	oob := make([]byte, unix.CmsgSpace(4))
	nb, no, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if msgs, _ := unix.ParseSocketControlMessage(oob[:no]); len(msgs) == 1 {
		if fds, _ := unix.ParseUnixRights(&msgs[0]); len(fds) == 1 {
			fd = fds[0]
			t.Cleanup(func() { unix.Close(fd) })
		}
	}
	f, err := readLaneFrame(bytesReader(buf[:nb]), 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, f.kind, f.header, fd
}

func TestLaneGetsCarryStampsThatReleaseEnds(t *testing.T) {
	_, path, key := startLane(t)
	c, kind, hdr, fd := dialLane(t, path, key)
	var welcome struct{ Version, Slots int }
	if kind != laneWelcome || json.Unmarshal(hdr, &welcome) != nil || welcome.Version != LaneVersion || welcome.Slots == 0 || fd < 0 {
		t.Fatalf("hello answered with kind %d %s, descriptor %d", kind, hdr, fd)
	}
	table, err := unix.Mmap(fd, 0, welcome.Slots*8, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(table)
	r := bufio.NewReader(c)
	ask := func(meta map[string]any, rows ...[]byte) (map[string]any, [][]byte) {
		t.Helper()
		body := []byte(nil)
		if len(rows) > 0 {
			body = laneBody(rows...)
		}
		if _, err := c.Write(laneRequestFrame(meta, body)); err != nil {
			t.Fatal(err)
		}
		f, err := readLaneFrame(r, 1<<20)
		if err != nil || f.kind != laneAnswer {
			t.Fatalf("answer: kind %d, %v", f.kind, err)
		}
		var m map[string]any
		json.Unmarshal(f.header, &m)
		rec, err := laneRows(f.body)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Release()
		var out [][]byte
		col := rec.Column(0).(*array.LargeBinary)
		for i := 0; i < col.Len(); i++ {
			out = append(out, append([]byte{}, col.Value(i)...))
		}
		return m, out
	}
	if m, _ := ask(map[string]any{"op": "put", "req": 1, "id": "obj"}, []byte("hello "), []byte("lane")); m["error"] != nil {
		t.Fatalf("put: %v", m)
	}
	m, rows := ask(map[string]any{"op": "get", "req": 2, "id": "obj"})
	if len(rows) != 1 || string(rows[0]) != "hello lane" || m["slot"] == nil {
		t.Fatalf("get: %v %q", m, rows)
	}
	slot, gen := int(m["slot"].(float64)), uint64(m["gen"].(float64))
	if binary.LittleEndian.Uint64(table[slot*8:]) != gen {
		t.Fatalf("the table's slot %d does not hold the answer's generation %d", slot, gen)
	}
	if m, _ := ask(map[string]any{"op": "release", "req": 3, "id": "obj"}); m["error"] != nil {
		t.Fatalf("release: %v", m)
	}
	if binary.LittleEndian.Uint64(table[slot*8:]) == gen {
		t.Fatal("the stamp still holds after the release was answered")
	}
	if m, _ := ask(map[string]any{"op": "get", "req": 4, "id": "obj"}); m["error"] == nil {
		t.Fatalf("a get after release: %v", m)
	}
}

func TestLaneRefusesAWrongKeyAndBadFrames(t *testing.T) {
	n, path, key := startLane(t)
	if _, kind, hdr, fd := dialLane(t, path, "not the key"); kind != laneRefused || fd >= 0 {
		t.Fatalf("a wrong key got kind %d %s, descriptor %d", kind, hdr, fd)
	}
	c, kind, _, _ := dialLane(t, path, key)
	if kind != laneWelcome {
		t.Fatalf("kind %d", kind)
	}
	c.Write(laneRequestFrame(map[string]any{"op": "put", "req": 1, "id": "x"}, []byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	if _, err := readLaneFrame(bufio.NewReader(c), 1<<20); err == nil {
		t.Fatal("a frame of bad rows was answered; the lane should have ended")
	}
	goodCall(t, context.Background(), client(t, n.unix)) // the node serves on
}
