// Real nodes for the cluster tests: started with `quiver start --block`
// (optionally inside a network namespace or with TLS), their counters
// read from cluster_status, Python functions registered and called on them.
package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/internal/dial"
)

// nodeSpec says how to start a node; the zero value (but for token) is a
// node with one Python worker on loopback starting a cluster.
type nodeSpec struct {
	token string
	join  []string
	// host is the listen and gossip host; "" means 127.0.0.1.
	host string
	// netns, when set, runs the node in that network namespace; the test
	// then reaches it over its unix socket.
	netns string
	// workers is the number of Python workers; 0 means 1.
	workers int
	// args are more flags of quiver start.
	args []string
	// tls, when set, is the node's certificates: the test dials it with
	// TLS trusting tls.ca.
	tls *nodeCerts
	// log, when set, receives the node's log (its stderr) as well.
	log io.Writer
	// stderr, when set, receives the node's log instead of the test's
	// stderr (a long soak keeps its output readable).
	stderr io.Writer
}

// spillNode is one started node.
type spillNode struct {
	addr   string // host:port
	gossip string // host:port
	token  string
	client string // the address the test dials
	opts   []grpc.DialOption
	env    []string // for the Python client: how to trust the node
	cmd    *exec.Cmd
}

// startSpillNode starts a node on loopback with one Python worker and the
// given token, joining the members at the gossip addresses join.
func startSpillNode(t *testing.T, bin, py, token string, join ...string) *spillNode {
	t.Helper()
	return startNode(t, bin, py, nodeSpec{token: token, join: join})
}

// startNode starts a node as spec says and waits for its ready line.
func startNode(t *testing.T, bin, py string, spec nodeSpec) *spillNode {
	t.Helper()
	dir := runDir(t)
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(spec.token), 0o600); err != nil {
		t.Fatal(err)
	}
	host, workers, socket := spec.host, spec.workers, "none"
	if host == "" {
		host = "127.0.0.1"
	}
	if workers == 0 {
		workers = 1
	}
	if spec.netns != "" {
		socket = filepath.Join(dir, "q.sock")
	}
	args := []string{"start", "--block", "--run-dir", dir, "--listen", host + ":0", "--socket", socket,
		"--workers", strconv.Itoa(workers), "--python", py, "--token-file", tok, "--shm-dir", "none",
		"--object-store-memory", "67108864", "--gossip", host + ":0"}
	if len(spec.join) > 0 {
		args = append(args, "--join", strings.Join(spec.join, ","))
	}
	if spec.tls != nil {
		args = append(args, "--tls-cert", spec.tls.cert, "--tls-key", spec.tls.key, "--tls-ca", spec.tls.ca)
	}
	args = append(args, spec.args...)
	cmd := exec.Command(bin, args...)
	if spec.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", spec.netns, bin}, args...)...)
	}
	var stderr io.Writer = os.Stderr
	if spec.stderr != nil {
		stderr = spec.stderr
	}
	cmd.Stderr = stderr
	if spec.log != nil {
		cmd.Stderr = io.MultiWriter(stderr, spec.log)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan *spillNode, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// "quiver ready tcp=HOST:PORT unix=PATH gossip=HOST:PORT"
			f := strings.Fields(sc.Text())
			if len(f) >= 5 && f[0] == "quiver" && f[1] == "ready" {
				ready <- &spillNode{addr: strings.TrimPrefix(f[2], "tcp="), gossip: strings.TrimPrefix(f[4], "gossip="), token: spec.token, cmd: cmd}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var n *spillNode
	select {
	case n = <-ready:
	case <-time.After(hang):
		t.Fatal("the node never said it was ready")
	}
	switch {
	case spec.netns != "":
		n.client = "grpc+unix://" + socket
	case spec.tls != nil:
		n.client = "grpc+tls://" + n.addr
		n.opts = []grpc.DialOption{grpc.WithTransportCredentials(spec.tls.clientCreds(t, false))}
		n.env = []string{"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=" + spec.tls.ca}
	default:
		n.client = "grpc://" + n.addr
	}
	return n
}

// dial opens a Flight client to n and a context with its token.
func (n *spillNode) dial(t *testing.T) (flight.Client, context.Context, context.CancelFunc) {
	t.Helper()
	c, err := dial.Client(n.client, n.opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(dial.WithToken(context.Background(), n.token), hang)
	return c, ctx, func() { cancel(); c.Close() }
}

// spillStats reads the node's scheduler counters from cluster_status.
type spillStats struct {
	Tasks        int64 `json:"tasks_total"`
	SpilledOut   int64 `json:"tasks_spilled_out"`
	SpilledIn    int64 `json:"tasks_spilled_in"`
	PeerFailures int64 `json:"peer_failures"`
	PeerRefusals int64 `json:"peer_refusals"`
	RoomsIn      int64 `json:"room_reports_in"`
	RoomsOut     int64 `json:"room_reports_out"`
	alivePeers   int
	minRTTMs     float64 // the least round trip measured to an alive peer; 0 if none yet
}

func (n *spillNode) stats(t *testing.T) spillStats {
	t.Helper()
	c, ctx, done := n.dial(t)
	defer done()
	stream, err := c.DoAction(ctx, &flight.Action{Type: "cluster_status"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Nodes []spillStats
		Peers []struct {
			State string
			RTTMs float64 `json:"rtt_ms"`
		}
	}
	if err := json.Unmarshal(res.Body, &st); err != nil || len(st.Nodes) != 1 {
		t.Fatalf("cluster_status %s: %v", res.Body, err)
	}
	for _, p := range st.Peers {
		if p.State == "alive" {
			st.Nodes[0].alivePeers++
			if n := &st.Nodes[0]; p.RTTMs > 0 && (n.minRTTMs == 0 || p.RTTMs < n.minRTTMs) {
				n.minRTTMs = p.RTTMs
			}
		}
	}
	return st.Nodes[0]
}

// waitPeers waits until n sees want peers alive.
func (n *spillNode) waitPeers(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for n.stats(t).alivePeers != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %d peers alive", n.addr, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registerSlow registers on n with the Python client "slow" (x*3,
// sleeping 20 ms a row) and "fast" (x*3 at once).
func registerSlow(t *testing.T, py string, n *spillNode) {
	t.Helper()
	prog := fmt.Sprintf(`
import time, pyarrow as pa, quiver
def slow(x):
    time.sleep(0.02 * len(x))
    return x * 3
def fast(x):
    return x * 3
c = quiver.connect(%q, token=%q)
c.register(slow, name="slow", returns=pa.int64())
c.register(fast, name="fast", returns=pa.int64())
`, n.client, n.token)
	cmd := exec.Command(py, "-c", prog)
	cmd.Env = append(os.Environ(), n.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
}

// callSlow calls slow on n over rows rows in tasks of 10.
func callSlow(t *testing.T, n *spillNode, rows int) { callFn(t, n, "slow", rows, 10) }

// callFn calls fn on n over rows rows in tasks of perTask rows and checks
// that exactly one result per row comes back, in order, each x*3.
func callFn(t *testing.T, n *spillNode, fn string, rows, perTask int) {
	c, ctx, done := n.dial(t)
	defer done()
	ctx = metadata.AppendToOutgoingContext(ctx, "quiver-rows-per-task", strconv.Itoa(perTask))
	stream, err := c.DoExchange(ctx)
	if err != nil {
		t.Error(err)
		return
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	for i := 0; i < rows; i++ {
		bld.Append(int64(i))
	}
	col := bld.NewArray()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows))
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{fn}})
	if err := w.Write(rec); err != nil {
		t.Error(err)
		return
	}
	_ = w.Close()
	_ = stream.CloseSend()
	r, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Error(err)
		return
	}
	defer r.Release()
	got := 0
	for r.Next() {
		vals := r.RecordBatch().Column(0).(*array.Int64)
		for i := 0; i < vals.Len(); i++ {
			if vals.IsNull(i) || vals.Value(i) != int64(got+i)*3 {
				t.Errorf("%s: row %d came back as %s, want %d", fn, got+i, vals.ValueStr(i), (got+i)*3)
				return
			}
		}
		got += vals.Len()
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Error(err)
		return
	}
	if got != rows {
		t.Errorf("%s returned %d rows for %d", fn, got, rows)
	}
}
