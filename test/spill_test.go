// Spillback across real nodes: three `quiver start --block` processes on
// loopback that form a cluster by gossip, one Python worker each, the
// first spilling a registered Python function's tasks to the others; a
// peer killed mid-call and a node with another token cost time, never
// rows.
package test

import (
	"syscall"
	"testing"
	"time"

	"github.com/quiver-udf/quiver/internal/testpy"
)

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
	// Room reports go only to nodes whose calls hold tasks: the origin
	// (how many depends on timing: a peer fed in time never has room).
	if st2.RoomsIn+st3.RoomsIn != 0 || st1.RoomsOut != 0 {
		t.Fatalf("origin %+v, peers %+v %+v: room reports went to a node that holds no task", st1, st2, st3)
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
	// p2 ran at most PeerLimit (2) tasks per slot for n1 when killed; once
	// one failed to reach it, n1 sent it nothing new: a few failures, not
	// one per placement until membership declared it dead.
	st := n1.stats(t)
	t.Logf("origin after the kill: %+v", st)
	if failed := st.PeerFailures - st1.PeerFailures; failed == 0 || failed > 2+2 {
		t.Errorf("origin %+v: %d peer failures for the kill, want 1 to 4 (the tasks p2 had, and at most 2 more)", st, failed)
	}
}
