// The chaos soak's cluster and its faults: real nodes on loopback, one
// with its spill directory on a small tmpfs; workers killed, peers killed
// and restarted on their addresses, a peer paused, the spill disk filled.
package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const chaosToken = "chaos-token"

var faultKinds = []string{"fill spill disk", "kill worker", "pause peer", "kill+restart peer"}

// skippedFault is a fault this machine cannot make ("" when it makes all):
// filling a tmpfs needs root to mount it.
var skippedFault string

// chaosNode is one node of the soak; restarts replace n.
type chaosNode struct {
	mu   sync.Mutex
	n    *spillNode
	spec nodeSpec
}

func (c *chaosNode) node() *spillNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *chaosNode) address() string { return c.node().client }

type chaosCluster struct {
	bin, py, logs string
	nodes         []*chaosNode // nodes[0] is the origin of the Python calls
	spillDir      string       // nodes[2]'s, a small tmpfs when root
}

// startChaosCluster starts three nodes: the first with two workers, the
// others with one, the third with a small object store spilling to a
// small tmpfs.
func startChaosCluster(t *testing.T, bin, py, logs string) *chaosCluster {
	cl := &chaosCluster{bin: bin, py: py, logs: logs, spillDir: filepath.Join(t.TempDir(), "spill")}
	if err := os.MkdirAll(cl.spillDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", cl.spillDir).CombinedOutput(); err != nil {
			t.Fatalf("mount tmpfs: %v: %s", err, out)
		}
		// Registered before the nodes start: it runs after they are stopped.
		t.Cleanup(func() { _ = exec.Command("umount", "-l", cl.spillDir).Run() })
	} else {
		skippedFault = "fill spill disk"
		t.Log("not root: the spill directory is no tmpfs, and the spill disk is not filled")
	}
	for i := 0; i < 3; i++ {
		log, err := os.Create(filepath.Join(logs, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		spec := nodeSpec{token: chaosToken, workers: 1, stderr: log}
		switch i {
		case 0:
			spec.workers = 2
		case 2:
			spec.args = []string{"--spill-dir", cl.spillDir, "--object-store-memory", strconv.Itoa(2 << 20)}
		}
		if i > 0 {
			spec.join = []string{cl.nodes[0].n.gossip}
		}
		n := startNode(t, bin, py, spec)
		// Restarts listen and gossip where the first start did.
		spec.args = append(spec.args, "--listen", n.addr, "--gossip", n.gossip)
		cl.nodes = append(cl.nodes, &chaosNode{n: n, spec: spec})
	}
	cl.nodes[0].n.waitPeers(t, 2)
	return cl
}

// faults makes one fault every few seconds, the kinds in turn, until end.
func (cl *chaosCluster) faults(t *testing.T, tally *chaosTally, end time.Time) {
	gap := 3 * time.Second
	if time.Until(end) > 3*time.Minute {
		gap = 5 * time.Second
	}
	for k := 0; time.Until(end) > gap; k++ {
		time.Sleep(gap)
		kind := faultKinds[k%len(faultKinds)]
		peer := cl.nodes[1+(k/len(faultKinds))%2]
		switch kind {
		case "kill worker":
			if !cl.killWorker(t, cl.nodes[k%3]) {
				continue
			}
		case "pause peer":
			p := peer.node().cmd.Process
			_ = p.Signal(syscall.SIGSTOP)
			time.Sleep(2500 * time.Millisecond) // past the failure detector's ~1 s
			_ = p.Signal(syscall.SIGCONT)
		case "kill+restart peer":
			cl.restart(t, peer)
		case "fill spill disk":
			if skippedFault == kind {
				continue
			}
			cl.fill(t, tally)
		}
		tally.fault(kind)
	}
}

// killWorker kill -9s one Python worker (a quiver.worker process below
// the node); false when it found none.
func (cl *chaosCluster) killWorker(t *testing.T, c *chaosNode) bool {
	for _, pid := range descendants(c.node().cmd.Process.Pid) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "quiver.worker") {
			return syscall.Kill(pid, syscall.SIGKILL) == nil
		}
	}
	t.Logf("no Python worker found under node %d", c.node().cmd.Process.Pid)
	return false
}

// descendants lists the processes below pid, children first.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	var out []int
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		out = append(out, children[queue[0]]...)
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// restart kill -9s the node and starts it again on its addresses, joining
// the others.
func (cl *chaosCluster) restart(t *testing.T, c *chaosNode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.n.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.n.cmd.Wait()
	spec := c.spec
	spec.join = nil
	for _, o := range cl.nodes {
		if o != c {
			spec.join = append(spec.join, o.spec.args[len(o.spec.args)-1]) // its gossip address
		}
	}
	if c == cl.nodes[2] {
		// The killed node's spill files stay on the tmpfs; a new node
		// starts with an empty spill directory.
		entries, _ := os.ReadDir(cl.spillDir)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(cl.spillDir, e.Name()))
		}
	}
	c.n = startNode(t, cl.bin, cl.py, spec)
}

// fill puts 1 MiB objects on the node with the tmpfs until it refuses
// one (or 24 MiB are stored: 2 MiB in memory, the rest spilled to the
// 8 MiB disk), then releases them.
func (cl *chaosCluster) fill(t *testing.T, tally *chaosTally) {
	cmd := exec.Command(cl.py, "chaos_client.py", "fill", cl.nodes[2].address(), "24")
	cmd.Env = append(os.Environ(), "QUIVER_TOKEN="+chaosToken)
	out, err := cmd.Output()
	var rep struct {
		Put, Released int
		Refused       string
	}
	if err != nil || json.Unmarshal(out, &rep) != nil {
		t.Errorf("filling the spill disk: %v: %s", err, out)
		return
	}
	tally.mu.Lock()
	tally.samples["fill spill disk"] = fmt.Sprintf("%d objects of 1 MiB stored, then refused: %q", rep.Put, rep.Refused)
	tally.mu.Unlock()
	if rep.Refused != "" {
		tally.addError(rep.Refused, 1, fmt.Sprintf("fill: refused after %d objects of 1 MiB", rep.Put))
	}
}

// servingAtEnd checks that the origin sees both peers again and that every
// node answers a verified call.
func (cl *chaosCluster) servingAtEnd(t *testing.T, tally *chaosTally) bool {
	deadline := time.Now().Add(30 * time.Second)
	for cl.nodes[0].node().stats(t).alivePeers != 2 {
		if time.Now().After(deadline) {
			t.Logf("the origin sees %d peers alive 30 s after the soak", cl.nodes[0].node().stats(t).alivePeers)
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok := true
	for i, c := range cl.nodes {
		out, err := exec.Command(cl.bin, "loadtest", "--target", c.address(), "--token", chaosToken, "--function", "haversine_km",
			"--generate", "rows=1000,cols=float64:4", "--duration", "1s", "--verify").CombinedOutput()
		if err != nil {
			t.Logf("node %d at the end: %v\n%s", i+1, err, out)
			ok = false
		}
	}
	return ok
}
