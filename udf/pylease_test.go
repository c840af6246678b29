// Leases with real worker processes: a leased worker answers a client
// directly, is the pool's again when the client closes, when it has been
// idle, or when it died, and no second lease takes a busy worker.
package udf

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/quiver-udf/quiver/internal/testpy"
)

// pickled is what python prints for expr, as bytes.
func pickled(t *testing.T, py, expr string) []byte {
	t.Helper()
	out, err := exec.Command(py, "-c", "import sys, pickle, cloudpickle; sys.stdout.buffer.write(cloudpickle.dumps("+expr+", protocol=pickle.HIGHEST_PROTOCOL))").Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leaseCall sends one request of one row on a leased socket and reads the
// answer's header and rows.
func leaseCall(t *testing.T, c net.Conn, r *bufio.Reader, req int, row []byte) (map[string]any, [][]byte) {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"op": "call", "req": req, "fn": "f"})
	body := binary.LittleEndian.AppendUint64(nil, 1)
	body = binary.LittleEndian.AppendUint64(body, 0)
	body = binary.LittleEndian.AppendUint64(body, uint64(len(row)))
	body = append(body, row...)
	pre := make([]byte, 16)
	pre[0] = 2
	binary.LittleEndian.PutUint32(pre[4:], uint32(len(h)))
	binary.LittleEndian.PutUint64(pre[8:], uint64(len(body)))
	if _, err := c.Write(append(append(pre, h...), body...)); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(r)
	if err != nil || f.kind != 11 {
		t.Fatalf("answer: kind %d, %v", f.kind, err)
	}
	var meta map[string]any
	if err := json.Unmarshal(f.header, &meta); err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(f.body)
	data := f.body[8+8*(n+1):]
	var rows [][]byte
	for i := uint64(0); i < n; i++ {
		a := binary.LittleEndian.Uint64(f.body[8+8*i:])
		b := binary.LittleEndian.Uint64(f.body[16+8*i:])
		rows = append(rows, data[a:b])
	}
	return meta, rows
}

func waitEnded(t *testing.T, ended chan struct{}, within time.Duration) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(within):
		t.Fatalf("the lease did not end within %s", within)
	}
}

func TestLeaseServesTheClientThenTheWorkerIsBack(t *testing.T) {
	py := testPython(t)
	pool := newTestPool(t, py, 1)
	blob := testpy.Blob(t, py, "def f(x): return x * 2", "task", "pa.large_binary()")
	// A task first: the worker is up and has the function.
	ended := make(chan struct{}, 1)
	var f *os.File
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if f, err = pool.Lease("fn1", "f", blob, time.Minute, time.Minute, func() { ended <- struct{}{} }); err == nil {
			break
		}
		if !errors.Is(err, ErrNoIdleWorker) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the worker is starting
	}
	if _, err := pool.Lease("fn1", "f", blob, time.Minute, time.Minute, func() {}); !errors.Is(err, ErrNoIdleWorker) {
		t.Fatalf("a second lease of the only worker: %v, want ErrNoIdleWorker", err)
	}
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	meta, rows := leaseCall(t, c, r, 7, pickled(t, py, "((21,), {})"))
	if meta["req"] != float64(7) || len(rows) != 1 || string(rows[0]) != string(pickled(t, py, `("ok", 42)`)) {
		t.Fatalf("answer %v %q", meta, rows)
	}
	_, rows = leaseCall(t, c, r, 8, pickled(t, py, "(('x',), {})"))
	if string(rows[0]) != string(pickled(t, py, `("ok", "xx")`)) {
		t.Fatalf("second answer %q", rows)
	}
	c.Close()
	waitEnded(t, ended, 30*time.Second)
	st := pool.Stats()
	if st.Idle != 1 || st.Leases != 1 || st.Tasks != 2 {
		t.Fatalf("after the lease: %+v, want the worker idle, 1 lease, 2 tasks", st)
	}
}

func TestLeaseEndsWhenIdleOrWhenTheWorkerDies(t *testing.T) {
	py := testPython(t)
	pool := newTestPool(t, py, 1)
	blob := testpy.Blob(t, py, "import os\ndef f(x):\n    if x == 'die': os._exit(1)\n    return x", "task", "pa.large_binary()")
	lease := func(idle time.Duration) (net.Conn, chan struct{}) {
		t.Helper()
		ended := make(chan struct{}, 1)
		deadline := time.Now().Add(60 * time.Second)
		for {
			f, err := pool.Lease("fn2", "f", blob, idle, time.Minute, func() { ended <- struct{}{} })
			if err == nil {
				c, err := net.FileConn(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c, ended
			}
			if !errors.Is(err, ErrNoIdleWorker) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Idle: the worker ends the lease by itself and closes its end.
	c, ended := lease(50 * time.Millisecond)
	waitEnded(t, ended, 30*time.Second)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the client's end after an idle lease: %v, want EOF", err)
	}
	// A request for another function ends the lease unanswered.
	c, ended = lease(time.Minute)
	other, _ := json.Marshal(map[string]any{"op": "call", "req": 1, "fn": "not f"})
	pre := make([]byte, 16)
	pre[0] = 2
	binary.LittleEndian.PutUint32(pre[4:], uint32(len(other)))
	c.Write(append(pre, other...))
	waitEnded(t, ended, 30*time.Second)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a request for another function: %v, want the lease closed unanswered", err)
	}
	// A task that kills the worker: the lease ends, the pool starts another.
	c, ended = lease(time.Minute)
	h, _ := json.Marshal(map[string]any{"op": "call", "req": 1, "fn": "f"})
	row := pickled(t, py, "(('die',), {})")
	body := binary.LittleEndian.AppendUint64(nil, 1)
	body = binary.LittleEndian.AppendUint64(body, 0)
	body = binary.LittleEndian.AppendUint64(body, uint64(len(row)))
	pre = make([]byte, 16)
	pre[0] = 2
	binary.LittleEndian.PutUint32(pre[4:], uint32(len(h)))
	binary.LittleEndian.PutUint64(pre[8:], uint64(len(body)+len(row)))
	c.Write(append(append(append(pre, h...), body...), row...))
	waitEnded(t, ended, 30*time.Second)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client's end still reads after its worker died")
	}
	deadline := time.Now().Add(60 * time.Second)
	for pool.Stats().Restarts != 1 || pool.Stats().Idle != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no replacement worker: %+v", pool.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
