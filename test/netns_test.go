// Separate hosts: each node in its own network namespace, on its own
// private address, the namespaces joined by a bridge (itself in a
// namespace of its own, so the test touches none of the machine's
// interfaces). A partitioned peer costs time, never rows; with 2 ms of
// delay each way, 20 ms tasks still spill and 50 us tasks stay home.
package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quiver-udf/quiver/internal/testpy"
)

// netLab is a set of network namespaces, one per node, on one subnet.
type netLab struct {
	hub   string   // the namespace of the bridge
	hosts []string // the nodes' namespaces
	ips   []string // their addresses, by index
	links []string // the bridge's end of each host's link, by index
}

// newNetLab makes n namespaces with addresses 10.213.X.1..n on a bridge,
// with names and subnet unique to this run, removed at the test's end
// (after the nodes in them are stopped). It skips the test where they
// cannot be made: not root, or no ip command (iproute2).
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("separate hosts need root: they are network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("separate hosts need the ip command (iproute2): ", err)
	}
	id := fmt.Sprintf("qv%d-%04x", os.Getpid()%100000, rand.IntN(1<<16))
	subnet := fmt.Sprintf("10.213.%d", 1+rand.IntN(250))
	lab := &netLab{hub: id + "-hub"}
	made := []string{}
	// Registered before any node starts: it runs after they are stopped.
	t.Cleanup(func() {
		for _, ns := range made {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("removing namespace %s: %v: %s", ns, err, out)
			}
		}
	})
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", lab.hub)
	made = append(made, lab.hub)
	ip("-n", lab.hub, "link", "add", "br0", "type", "bridge")
	ip("-n", lab.hub, "link", "set", "br0", "up")
	for i := 0; i < n; i++ {
		ns, link, addr := fmt.Sprintf("%s-%d", id, i+1), fmt.Sprintf("h%d", i+1), fmt.Sprintf("%s.%d", subnet, i+1)
		ip("netns", "add", ns)
		made = append(made, ns)
		ip("-n", lab.hub, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip("-n", lab.hub, "link", "set", link, "master", "br0")
		ip("-n", lab.hub, "link", "set", link, "up")
		ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		ip("-n", ns, "link", "set", "eth0", "up")
		ip("-n", ns, "link", "set", "lo", "up")
		lab.hosts, lab.ips, lab.links = append(lab.hosts, ns), append(lab.ips, addr), append(lab.links, link)
	}
	return lab
}

// cut takes host i off the network: its link to the bridge goes down.
func (lab *netLab) cut(t *testing.T, i int) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", lab.hub, "link", "set", lab.links[i], "down").CombinedOutput(); err != nil {
		t.Fatalf("cutting %s: %v: %s", lab.hosts[i], err, out)
	}
}

// delay adds d of delay to everything each host sends, so d each way
// between any two: with netem where the kernel has it, else through an
// NFQUEUE that this process holds each packet in (netdelay_test.go).
func (lab *netLab) delay(t *testing.T, d time.Duration) {
	t.Helper()
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("delaying the links needs the tc command (iproute2): ", err)
	}
	for _, ns := range lab.hosts {
		out, err := exec.Command("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", d.String()).CombinedOutput()
		if err != nil && strings.Contains(string(out), "qdisc kind is unknown") {
			delayWithNFQueue(t, ns, d)
			continue
		}
		if err != nil {
			t.Fatalf("tc netem in %s: %v: %s", ns, err, out)
		}
	}
}

// startLabNodes starts a node with one worker in each host of lab, the
// others joining the first, and waits until the first sees them all.
func startLabNodes(t *testing.T, lab *netLab, bin, py string) []*spillNode {
	t.Helper()
	var nodes []*spillNode
	for i, ns := range lab.hosts {
		spec := nodeSpec{token: "cluster-token", host: lab.ips[i], netns: ns}
		if i > 0 {
			spec.join = []string{nodes[0].gossip}
		}
		n := startNode(t, bin, py, spec)
		if !strings.HasPrefix(n.addr, lab.ips[i]+":") || !strings.HasPrefix(n.gossip, lab.ips[i]+":") {
			t.Fatalf("node in %s serves %s, gossips %s: want its address %s", ns, n.addr, n.gossip, lab.ips[i])
		}
		nodes = append(nodes, n)
	}
	nodes[0].waitPeers(t, len(nodes)-1)
	return nodes
}

func TestSeparateHostsSpillAndSurviveAPartition(t *testing.T) {
	lab := newNetLab(t, 3)
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	nodes := startLabNodes(t, lab, bin, py)
	n1, p2, p3 := nodes[0], nodes[1], nodes[2]
	registerSlow(t, py, n1)

	callSlow(t, n1, 300)
	st1, st2, st3 := n1.stats(t), p2.stats(t), p3.stats(t)
	t.Logf("origin %+v, peers %+v %+v", st1, st2, st3)
	if st1.Tasks-st1.SpilledOut == 0 || st2.SpilledIn == 0 || st3.SpilledIn == 0 {
		t.Fatalf("origin %+v, peers %+v %+v: want tasks run on all three hosts", st1, st2, st3)
	}

	// Cut p3 off once it runs tasks of the second call: its tasks run
	// again elsewhere, and every row comes back once, right.
	before := st3.SpilledIn
	done := make(chan struct{})
	go func() { defer close(done); callSlow(t, n1, 300) }()
	waitStat(t, p3, "p3 runs a task of the second call", func(s spillStats) bool { return s.SpilledIn > before })
	lab.cut(t, 2)
	<-done
	st := n1.stats(t)
	t.Logf("origin after the partition %+v", st)
	if st.PeerFailures == st1.PeerFailures {
		t.Errorf("origin %+v: want the tasks p3 had counted as peer failures", st)
	}
}

func TestSeparateHostsSpillOnlyTasksWorthTheDelay(t *testing.T) {
	lab := newNetLab(t, 3)
	lab.delay(t, 2*time.Millisecond)
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	nodes := startLabNodes(t, lab, bin, py)
	n1 := nodes[0]
	registerSlow(t, py, n1)
	// The links are slow: membership's probes measure about 4 ms.
	waitStat(t, n1, "a round trip measured to every peer", func(s spillStats) bool { return s.minRTTMs > 0 })
	if rtt := n1.stats(t).minRTTMs; rtt < 3.5 {
		t.Fatalf("round trip to the peers %.2f ms: the 2 ms delay each way is not in effect", rtt)
	}

	// 20 ms tasks move once measured: the round trip of 4 ms (and what
	// the delaying adds) is a fraction of them. The first call measures
	// the function; its tasks, thought to cost 10 ms, may stay.
	callFn(t, n1, "slow", 60, 1)
	before := n1.stats(t)
	callFn(t, n1, "slow", 60, 1)
	slow := n1.stats(t)
	t.Logf("20 ms tasks: origin %+v", slow)
	if slow.SpilledOut == before.SpilledOut {
		t.Errorf("origin %+v: no 20 ms task spilled over a 2 ms link", slow)
	}

	// Tasks of a few microseconds stay: the first call measures the
	// function (its tasks, of unknown cost, may move), the second runs
	// 500 tasks knowing their cost.
	callFn(t, n1, "fast", 1000, 2)
	warm := n1.stats(t)
	callFn(t, n1, "fast", 1000, 2)
	fast := n1.stats(t)
	t.Logf("fast tasks: origin %+v", fast)
	if fast.Tasks-warm.Tasks != 500 || fast.SpilledOut != warm.SpilledOut {
		t.Errorf("origin %+v after %+v: %d of %d cheap tasks spilled over a 2 ms link, want none",
			fast, warm, fast.SpilledOut-warm.SpilledOut, fast.Tasks-warm.Tasks)
	}
}
