// Spillback across real nodes: three `quiver start --block` processes on
// loopback that form a cluster by gossip, one Python worker each, the
// first spilling a registered Python function's tasks to the others; a
// peer killed mid-call and a node with another token cost time, never
// rows.
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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/internal/testpy"
)

// spillNode is one started node.
type spillNode struct {
	addr   string // host:port
	gossip string // host:port
	token  string
	cmd    *exec.Cmd
}

// startSpillNode starts a node with one Python worker and the given token,
// joining the members at the gossip addresses join, and waits for its
// ready line.
func startSpillNode(t *testing.T, bin, py, token string, join ...string) *spillNode {
	t.Helper()
	dir := runDir(t)
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"start", "--block", "--run-dir", dir, "--listen", "127.0.0.1:0", "--socket", "none",
		"--workers", "1", "--python", py, "--token-file", tok, "--shm-dir", "none", "--object-store-memory", "67108864"}
	args = append(args, "--gossip", "127.0.0.1:0")
	for _, j := range join {
		args = append(args, "--join", j)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
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
				ready <- &spillNode{addr: strings.TrimPrefix(f[2], "tcp="), gossip: strings.TrimPrefix(f[4], "gossip="), token: token, cmd: cmd}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case n := <-ready:
		return n
	case <-time.After(hang):
		t.Fatal("the node never said it was ready")
		return nil
	}
}

// spillStats reads the node's scheduler counters from cluster_status.
type spillStats struct {
	Tasks        int64 `json:"tasks_total"`
	SpilledOut   int64 `json:"tasks_spilled_out"`
	SpilledIn    int64 `json:"tasks_spilled_in"`
	PeerFailures int64 `json:"peer_failures"`
	alivePeers   int
}

func (n *spillNode) stats(t *testing.T) spillStats {
	t.Helper()
	c, err := dial.Client("grpc://" + n.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(dial.WithToken(context.Background(), n.token), hang)
	defer cancel()
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
		Peers []struct{ State string }
	}
	if err := json.Unmarshal(res.Body, &st); err != nil || len(st.Nodes) != 1 {
		t.Fatalf("cluster_status %s: %v", res.Body, err)
	}
	for _, p := range st.Peers {
		if p.State == "alive" {
			st.Nodes[0].alivePeers++
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

// registerSlow registers "slow" (x*3, sleeping 20 ms a row) on n with the
// Python client.
func registerSlow(t *testing.T, py string, n *spillNode) {
	t.Helper()
	prog := fmt.Sprintf(`
import time, pyarrow as pa, quiver
def slow(x):
    time.sleep(0.02 * len(x))
    return x * 3
quiver.connect("grpc://%s", token=%q).register(slow, name="slow", returns=pa.int64())
`, n.addr, n.token)
	if out, err := exec.Command(py, "-c", prog).CombinedOutput(); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
}

// callSlow calls slow on n over rows rows in tasks of 10 and checks that
// exactly one result per row comes back, in order, each x*3.
func callSlow(t *testing.T, n *spillNode, rows int) {
	c, err := dial.Client("grpc://" + n.addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(dial.WithToken(context.Background(), n.token), hang)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "quiver-rows-per-task", "10")
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
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"slow"}})
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
				t.Errorf("row %d came back as %s, want %d", got+i, vals.ValueStr(i), (got+i)*3)
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
		t.Errorf("slow returned %d rows for %d", got, rows)
	}
}

func TestTasksSpillToPeersAndSurviveALostPeer(t *testing.T) {
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	p2 := startSpillNode(t, bin, py, "cluster-token")
	p3 := startSpillNode(t, bin, py, "cluster-token", p2.gossip)
	stranger := startSpillNode(t, bin, py, "another-token", p2.gossip)
	n1 := startSpillNode(t, bin, py, "cluster-token", p2.gossip, stranger.gossip)
	n1.waitPeers(t, 2)
	registerSlow(t, py, n1)

	callSlow(t, n1, 300)
	st1, st2, st3 := n1.stats(t), p2.stats(t), p3.stats(t)
	t.Logf("origin %+v, peers %+v %+v", st1, st2, st3)
	if st1.SpilledOut == 0 || st1.Tasks-st1.SpilledOut == 0 || st2.SpilledIn == 0 || st3.SpilledIn == 0 {
		t.Fatalf("origin %+v, peers %+v %+v: want tasks run on all three", st1, st2, st3)
	}
	if st := stranger.stats(t); st.SpilledIn != 0 {
		t.Fatalf("the node with another token ran %d spilled tasks", st.SpilledIn)
	}
	if st := stranger.stats(t); st.alivePeers != 0 {
		t.Fatalf("the node with another token sees %d peers", st.alivePeers)
	}

	// Kill p2 once it runs tasks of the second call; the call completes.
	before := st2.SpilledIn
	done := make(chan struct{})
	go func() { defer close(done); callSlow(t, n1, 300) }()
	deadline := time.Now().Add(hang)
	for p2.stats(t).SpilledIn == before {
		if time.Now().After(deadline) {
			t.Fatal("p2 never got a task of the second call")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if st := n1.stats(t); st.PeerFailures == 0 {
		t.Errorf("origin %+v: want the tasks p2 had counted as peer failures", st)
	}
}
