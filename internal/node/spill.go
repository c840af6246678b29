// The interim placement: spill to the least loaded peer once this node's
// lane is saturated. scheduler.Hybrid replaces it.
package node

import "github.com/quiver-udf/quiver/scheduler"

// spillWhenBusy runs a task here while the lane has fewer tasks waiting
// than it has slots, else on the peer with the least load per slot (its
// reported running and queued tasks plus those this node has in flight
// there), if that is less than here. A spilled task always runs here.
type spillWhenBusy struct{}

func (spillWhenBusy) Place(s scheduler.Snapshot, t scheduler.TaskInfo) scheduler.Decision {
	if t.Spilled || s.Queued < s.Slots || len(s.Peers) == 0 {
		return scheduler.Decision{}
	}
	here := float64(s.Running+s.Queued) / float64(max(s.Slots, 1))
	best, bestLoad := "", here
	for _, p := range s.Peers {
		if p.Slots <= 0 {
			continue
		}
		load := float64(p.Running+p.Queued+p.Inflight) / float64(p.Slots)
		if load < bestLoad {
			best, bestLoad = p.Name, load
		}
	}
	return scheduler.Decision{Peer: best}
}
