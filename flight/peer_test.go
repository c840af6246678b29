// The peer client against a real server: a spilled task's result, the
// refusals that send a task back, and what one spilled task costs.
package flight

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/scheduler"
)

// peerTask is a spilled task of the built-in identity over rec.
func peerTask(t testing.TB, n *testNode, rec arrow.RecordBatch) scheduler.RemoteTask {
	fn, err := n.srv.cat.Lookup("identity")
	if err != nil {
		t.Fatal(err)
	}
	return scheduler.RemoteTask{Func: fn, Rec: rec}
}

func TestPeerClientRunsASpilledTask(t *testing.T) {
	n := startNode(t, nodeOptions{cfg: Config{Token: "tok"}})
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pc := NewPeerClient(PeerConfig{Token: "tok", Mem: mem})
	defer pc.Close()
	addr := strings.TrimPrefix(n.tcp, "grpc://")
	rec := int64Batch(0, 100, true)
	defer rec.Release()
	task := peerTask(t, n, rec)
	res, err := pc.Run(testCtx(t), addr, task)
	if err != nil {
		t.Fatal(err)
	}
	got, want := res.Col.(*array.Int64), rec.Column(0).(*array.Int64)
	if got.Len() != 100 || got.NullN() != want.NullN() || got.Value(7) != want.Value(7) {
		t.Fatalf("identity on the peer returned %s", abbrev(got))
	}
	res.Col.Release()
	if st := n.sched.Stats(); st.SpilledIn != 1 {
		t.Fatalf("the peer counted %d tasks spilled in, want 1", st.SpilledIn)
	}

	// A wrong token and an unknown function send the task back: refusals.
	bad := NewPeerClient(PeerConfig{Token: "wrong", Mem: mem})
	defer bad.Close()
	if _, err := bad.Run(testCtx(t), addr, task); !errors.Is(err, scheduler.ErrPeerRefused) {
		t.Fatalf("wrong token: got %v, want ErrPeerRefused", err)
	}
	if _, err := pc.FetchFunction(testCtx(t), addr, "00ff"); err == nil {
		t.Fatal("fetch_function of an unknown hash answered")
	}
}

func TestPeerClientLosesAPeerThatIsGone(t *testing.T) {
	pc := NewPeerClient(PeerConfig{})
	defer pc.Close()
	rec := int64Batch(0, 3, false)
	defer rec.Release()
	n := startNode(t, nodeOptions{})
	task := peerTask(t, n, rec)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	_, err := pc.Run(ctx, "127.0.0.1:1", task)
	if !errors.Is(err, scheduler.ErrPeerLost) {
		t.Fatalf("got %v, want ErrPeerLost", err)
	}
}

// BenchmarkPeerRun is the cost of one spilled task of identity over 10
// rows on a peer over loopback TCP, its connection reused.
func BenchmarkPeerRun(b *testing.B) {
	n := startNode(b, nodeOptions{mem: memory.DefaultAllocator})
	pc := NewPeerClient(PeerConfig{})
	defer pc.Close()
	addr := strings.TrimPrefix(n.tcp, "grpc://")
	rec := int64Batch(0, 10, false)
	defer rec.Release()
	task := peerTask(b, n, rec)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := pc.Run(ctx, addr, task)
		if err != nil {
			b.Fatal(err)
		}
		res.Col.Release()
	}
}
