// Test helpers: clusters on loopback, and waiting for a view to converge.
package cluster

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// node is a Cluster under test with a load the test can change.
type node struct {
	*Cluster
	load   atomic.Pointer[Load]
	events chan Event
}

// start starts a Cluster on a free loopback port; cfg.Load and cfg.OnEvent
// are the test's. It is closed when the test ends.
func start(t testing.TB, cfg Config, load Load) *node {
	t.Helper()
	n := &node{events: make(chan Event, 1024)}
	n.load.Store(&load)
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.Load = func() Load { return *n.load.Load() }
	cfg.OnEvent = func(e Event) {
		select {
		case n.events <- e:
		default:
		}
	}
	c, err := New(cfg, zaptest.NewLogger(t).Named(cfg.Name))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.Cluster = c
	t.Cleanup(func() { c.Close() })
	return n
}

// startThree starts a, then b and c joining a.
func startThree(t testing.TB, token string) (a, b, c *node) {
	t.Helper()
	a = start(t, Config{Name: "a", Token: token}, Load{Flight: "127.0.0.1:1001", Workers: 1})
	join := []string{a.Self().GossipAddr}
	b = start(t, Config{Name: "b", Token: token, Join: join}, Load{Flight: "127.0.0.1:1002", Workers: 2})
	c = start(t, Config{Name: "c", Token: token, Join: join}, Load{Flight: "127.0.0.1:1003", Workers: 3})
	for _, n := range []*node{a, b, c} {
		waitFor(t, 10*time.Second, "three alive members", func() bool { return count(n.Members(), StateAlive) == 3 })
	}
	return a, b, c
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("no %s after %s", what, limit)
		}
		<-tick.C
	}
	return time.Since(start)
}

// count is the number of members in state s.
func count(ms []Member, s State) int {
	n := 0
	for _, m := range ms {
		if m.State == s {
			n++
		}
	}
	return n
}

// find is the member named name, or a zero Member.
func find(ms []Member, name string) Member {
	for _, m := range ms {
		if m.Name == name {
			return m
		}
	}
	return Member{}
}

// waitEvent waits for an event of kind about member name.
func waitEvent(t testing.TB, n *node, kind EventKind, name string, limit time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case e := <-n.events:
			if e.Kind == kind && e.Member.Name == name {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s event for %s after %s", kind, name, limit)
		}
	}
}
