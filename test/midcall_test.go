// Membership changing under a call: a peer stopped with SIGTERM finishes
// the tasks it runs and exits cleanly, and a node joining takes work.
package test

import (
	"syscall"
	"testing"
	"time"

	"github.com/quiver-udf/quiver/internal/testpy"
)

// waitStat polls n's counters until ok says yes, failing at hang.
func waitStat(t *testing.T, n *spillNode, what string, ok func(spillStats) bool) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for !ok(n.stats(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, hang)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStoppedPeerFinishesItsTasksAndExits(t *testing.T) {
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	p2 := startSpillNode(t, bin, py, "cluster-token")
	n1 := startSpillNode(t, bin, py, "cluster-token", p2.gossip)
	n1.waitPeers(t, 1)
	registerSlow(t, py, n1)
	before := n1.stats(t)

	// Tasks of 1.2 s: p2 still runs (and queues) some when it drains.
	done := make(chan struct{})
	go func() { defer close(done); callFn(t, n1, "slow", 300, 60) }()
	waitStat(t, p2, "p2 runs a task of the call", func(s spillStats) bool { return s.SpilledIn > 0 })
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p2.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("p2 stopped with %v, want exit status 0", err)
		}
	case <-time.After(hang):
		t.Fatal("p2 did not exit after SIGTERM")
	}
	<-done
	st := n1.stats(t)
	t.Logf("origin before %+v, after %+v", before, st)
	if st.SpilledOut == before.SpilledOut {
		t.Fatalf("origin %+v: nothing was spilled", st)
	}
	if st.PeerFailures != before.PeerFailures {
		t.Errorf("origin %+v: %d peer failures, want none: a stopping peer finishes its tasks", st, st.PeerFailures-before.PeerFailures)
	}
}

func TestNodeJoiningMidCallGetsWork(t *testing.T) {
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	n1 := startSpillNode(t, bin, py, "cluster-token")
	registerSlow(t, py, n1)

	// 200 rows of 20 ms in tasks of 5: 4 s on n1's one worker alone.
	done := make(chan struct{})
	go func() { defer close(done); callFn(t, n1, "slow", 200, 5) }()
	waitStat(t, n1, "the call started", func(s spillStats) bool { return s.Tasks > 0 })
	p2 := startSpillNode(t, bin, py, "cluster-token", n1.gossip)
	<-done
	st1, st2 := n1.stats(t), p2.stats(t)
	t.Logf("origin %+v, joined %+v", st1, st2)
	if st2.SpilledIn == 0 {
		t.Errorf("the node that joined mid-call ran none of its tasks: origin %+v, joined %+v", st1, st2)
	}
}
