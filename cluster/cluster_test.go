// Tests of membership with real memberlist instances on loopback.
package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestThreeMembersSeeEachOther: three nodes form one cluster, in order of
// name, and each sees the others' load.
func TestThreeMembersSeeEachOther(t *testing.T) {
	a, b, c := startThree(t, "secret")
	for _, n := range []*node{a, b, c} {
		if err := n.WaitJoin(context.Background()); err != nil {
			t.Fatalf("%s: WaitJoin: %v", n.Self().Name, err)
		}
		ms := n.Members()
		for i, want := range []string{"a", "b", "c"} {
			m := ms[i]
			if m.Name != want || m.Load.Workers != i+1 || m.Load.Flight == "" || m.GossipAddr == "" {
				t.Fatalf("%s sees member %d as %+v", n.Self().Name, i, m)
			}
		}
	}
	if s := b.Self(); s.Name != "b" || s.State != StateAlive || s.Load.Workers != 2 {
		t.Fatalf("Self: %+v", s)
	}
}

// TestLoadUpdatePropagates: a changed load reaches the others, with an
// Updated event.
func TestLoadUpdatePropagates(t *testing.T) {
	a, b, _ := startThree(t, "")
	a.load.Store(&Load{Flight: "127.0.0.1:1001", Workers: 1, WorkersBusy: 1, Queued: 7, Warm: []string{WarmHash("f")}})
	took := waitFor(t, 5*time.Second, "updated load on b", func() bool { return find(b.Members(), "a").Load.Queued == 7 })
	t.Logf("load update seen after %s", took)
	if e := waitEvent(t, b, Updated, "a", 5*time.Second); e.Member.Load.WorkersBusy != 1 {
		t.Fatalf("update event: %+v", e)
	}
}

// TestKilledMemberIsDead: a member that stops without leaving is declared
// dead, and stays listed as dead.
func TestKilledMemberIsDead(t *testing.T) {
	a, b, c := startThree(t, "secret")
	start := time.Now()
	c.Close()
	e := waitEvent(t, a, Dead, "c", 10*time.Second)
	t.Logf("dead after %s", time.Since(start))
	if e.Member.State != StateDead || e.Member.Load.Workers != 3 {
		t.Fatalf("dead event: %+v", e)
	}
	waitFor(t, 10*time.Second, "c dead on b", func() bool { return find(b.Members(), "c").State == StateDead })
	if ms := a.Members(); len(ms) != 3 || find(ms, "c").State != StateDead {
		t.Fatalf("members after a death: %+v", ms)
	}
}

// TestLeaveIsLeft: a member that leaves is seen as left, not dead.
func TestLeaveIsLeft(t *testing.T) {
	a, _, c := startThree(t, "")
	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitEvent(t, a, Left, "c", 10*time.Second)
	if m := find(a.Members(), "c"); m.State != StateLeft {
		t.Fatalf("c after leaving: %+v", m)
	}
}

// TestWrongTokenCannotJoin: a node with another token gives up joining, and
// neither side ever lists the other.
func TestWrongTokenCannotJoin(t *testing.T) {
	a := start(t, Config{Name: "a", Token: "one"}, Load{})
	b := start(t, Config{Name: "b", Token: "two", Join: []string{a.Self().GossipAddr}, JoinTimeout: time.Second}, Load{})
	if err := b.WaitJoin(context.Background()); !errors.Is(err, ErrJoin) {
		t.Fatalf("WaitJoin: %v, want ErrJoin", err)
	}
	if len(a.Members()) != 1 || len(b.Members()) != 1 {
		t.Fatalf("a sees %+v, b sees %+v", a.Members(), b.Members())
	}
}

// TestNoTokenBeyondLoopbackIsRefused: gossip reachable from the network
// needs a token.
func TestNoTokenBeyondLoopbackIsRefused(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if c, err := New(Config{Bind: bind}, nil); err == nil {
			c.Close()
			t.Fatalf("New(%s) without a token: no error", bind)
		}
	}
}

// TestCloseWhileJoining: closing ends a join that keeps failing.
func TestCloseWhileJoining(t *testing.T) {
	n := start(t, Config{Join: []string{"127.0.0.1:1"}}, Load{})
	n.Close()
	if err := n.WaitJoin(context.Background()); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrJoin) {
		t.Fatalf("WaitJoin after Close: %v", err)
	}
}
