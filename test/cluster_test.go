// Three real quiver processes form a cluster by gossip; quiver status
// lists them, and a node killed with kill -9 is listed dead soon after.
package test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// member is a quiver start --block process and its ready line's fields.
type member struct {
	cmd               *exec.Cmd
	tcp, unix, gossip string
}

// startMember starts a blocking node gossiping on a free loopback port,
// joining join (if any), and waits for its ready line.
func startMember(t *testing.T, bin string, join ...string) *member {
	t.Helper()
	dir := runDir(t)
	args := []string{"start", "--block", "--run-dir", dir, "--socket", filepath.Join(dir, "q.sock"),
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--workers", "-1", "--log-level", "warn"}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		lines <- sc.Text()
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(hang):
		t.Fatalf("no ready line within %s", hang)
	}
	m := &member{cmd: cmd}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "quiver ready ")) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "tcp":
			m.tcp = v
		case "unix":
			m.unix = v
		case "gossip":
			m.gossip = v
		}
	}
	if !strings.HasPrefix(line, "quiver ready tcp=") || m.gossip == "" || strings.HasSuffix(m.gossip, ":0") {
		t.Fatalf("ready line %q", line)
	}
	return m
}

// clusterView is the part of quiver status --json this test reads.
type clusterView struct {
	Nodes []struct {
		Name, Gossip, State string
	} `json:"nodes"`
	Peers []struct {
		Name, Address, Gossip, State string
	} `json:"peers"`
	Totals struct {
		Nodes      int `json:"nodes"`
		NodesAlive int `json:"nodes_alive"`
	} `json:"totals"`
}

// status runs quiver status --json against m.
func (m *member) status(t *testing.T, bin string) clusterView {
	t.Helper()
	out, err := quiver(t, bin, "status", "--json", "--address", "grpc://"+m.tcp)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var v clusterView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return v
}

// peerState is the state m's status gives the peer gossiping at gossip.
func (v clusterView) peerState(gossip string) string {
	for _, p := range v.Peers {
		if p.Gossip == gossip {
			return p.State
		}
	}
	return ""
}

func TestThreeNodesGossipAndSeeADeath(t *testing.T) {
	bin := buildQuiver(t)
	a := startMember(t, bin)
	b := startMember(t, bin, a.gossip)
	c := startMember(t, bin, a.gossip)

	var v clusterView
	deadline := time.Now().Add(20 * time.Second)
	for {
		v = a.status(t, bin)
		if v.Totals.NodesAlive == 3 && v.peerState(b.gossip) == "alive" && v.peerState(c.gossip) == "alive" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three alive nodes after 20 s: %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := v.Nodes[0]; n.Gossip != a.gossip || n.State != "alive" || n.Name == "" {
		t.Fatalf("this node's entry: %+v", n)
	}
	for _, p := range v.Peers {
		if p.Address == "" || p.Name == "" {
			t.Fatalf("peer without a Flight address or name: %+v", p)
		}
	}

	killed := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for a.status(t, bin).peerState(c.gossip) != "dead" {
		if time.Now().After(deadline) {
			t.Fatalf("the killed node is not listed dead after 20 s: %+v", a.status(t, bin))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kill -9 listed dead after %s", time.Since(killed).Round(10*time.Millisecond))
	for b.status(t, bin).peerState(c.gossip) != "dead" {
		if time.Now().After(deadline) {
			t.Fatalf("b does not list the killed node dead: %+v", b.status(t, bin))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
