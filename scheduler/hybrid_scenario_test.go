// Scenario commands of Hybrid placement (testdata/hybrid.txt).
package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/quiver-udf/quiver/internal/scenario"
)

func (st *scenarioState) execHybrid(s scenario.Step, f []string) []string {
	switch f[0] {
	case "nopeers":
		st.peers = nil
		return nil
	case "peer":
		n := st.nums(s, f[:6], 5, "name")
		p := PeerView{Name: f[1], Slots: int(n[2]), Running: int(n[3]), Queued: int(n[4]), Inflight: int(n[5])}
		for _, opt := range f[6:] {
			k, v, _ := strings.Cut(opt, "=")
			var err error
			switch k {
			case "warm":
				p.Warm = true
			case "rtt":
				p.RTTNs, err = strconv.ParseInt(v, 10, 64)
			case "atreport":
				p.InflightAtReport, err = strconv.Atoi(v)
			case "nspb":
				p.MoveNsPerByte, err = strconv.ParseFloat(v, 64)
			default:
				st.t.Fatalf("line %d: unknown peer option %q", s.Line, opt)
			}
			if err != nil {
				st.t.Fatalf("line %d: %v", s.Line, err)
			}
		}
		st.peers = append(st.peers, p)
		return nil
	case "hybrid":
		n := st.nums(s, f[:7], 6)
		snap, t := st.hybridArgs(n)
		snap.Rand = uint64(n[6])
		t.Spilled = len(f) > 7 && f[7] == "spilled"
		return []string{where(Hybrid{}.Place(snap, t))}
	case "spread":
		n := st.nums(s, f, 6)
		snap, t := st.hybridArgs(n)
		counts := map[string]int{}
		x := uint64(1)
		for i := int64(0); i < n[6]; i++ {
			x = splitmix(x)
			snap.Rand = x
			counts[where(Hybrid{}.Place(snap, t))]++
		}
		var out []string
		for k, v := range counts {
			out = append(out, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(out)
		return out
	}
	return nil
}

// hybridArgs is the snapshot and task of "SLOTS RUNNING QUEUED COST_NS BYTES".
func (st *scenarioState) hybridArgs(n []int64) (Snapshot, TaskInfo) {
	snap := Snapshot{Lane: LaneWorkers, Slots: int(n[1]), Running: int(n[2]), Queued: int(n[3]), Peers: st.peers}
	snap.Busy = busyNodes(snap)
	return snap, TaskInfo{Func: "f", Rows: 1, CostNs: n[4], Bytes: n[5]}
}

func where(d Decision) string {
	if d.Local() {
		return "here"
	}
	return "peer " + d.Peer
}

// splitmix is a step of SplitMix64: well-spread random numbers from a
// counter.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
