// Where the node learns its peers: a PeerSource, read from membership.
package node

import (
	"sync/atomic"
	"time"

	"github.com/quiver-udf/quiver/cluster"
	"github.com/quiver-udf/quiver/scheduler"
)

// PeerSource says which peers there are and how loaded they are. The
// remote layer reads it for every placement; it must be cheap and safe for
// concurrent use. clusterPeers reads it from membership (gossip).
type PeerSource interface {
	Views() []PeerInfo
}

// PeerInfo is one peer as last heard of.
type PeerInfo struct {
	Name       string // unique in the cluster
	FlightAddr string // host:port of its Flight service
	// Lanes is its load per lane, indexed by scheduler.Lane.
	Lanes [2]LaneLoad
	// Alive: it takes new tasks. False once it stopped answering (tasks in
	// flight to it are re-run elsewhere) or while it leaves.
	Alive bool
	// Leaving: it leaves on purpose (quiver stop): it takes no new task and
	// finishes those in flight, which are not cut off.
	Leaving bool
	// Held is the tasks its calls hold for want of room.
	Held int
	// Report names its load report: a new number for each.
	Report uint64
	// RTT is this node's last measured round trip to it; zero if unknown.
	RTT time.Duration
}

// LaneLoad is a peer's load in one lane.
type LaneLoad struct {
	Slots, Running, Queued int
}

// clusterPeers is the PeerSource of a node in a cluster: the other
// members, alive while membership says so (suspect counts as alive: a
// task in flight is not cut off for one missed probe, and placement sends
// a suspect nothing new only once it is declared dead).
// Its cluster is set once membership starts, after the scheduler that
// reads it: until then it reports no peers.
type clusterPeers struct {
	c atomic.Pointer[cluster.Cluster]
}

// selfName is this node's name in the cluster, "" before it joins.
func (cp *clusterPeers) selfName() string {
	if c := cp.c.Load(); c != nil {
		return c.Self().Name
	}
	return ""
}

// Views returns the other members with a Flight address, in name order.
func (cp *clusterPeers) Views() []PeerInfo {
	c := cp.c.Load()
	if c == nil {
		return nil
	}
	self := c.Self().Name
	var out []PeerInfo
	for _, m := range c.Members() {
		if m.Name == self || m.Load.Flight == "" {
			continue
		}
		l := m.Load
		leaving := m.Leaving || m.State == cluster.StateLeft
		v := PeerInfo{Name: m.Name, FlightAddr: l.Flight, Report: m.Reports, RTT: m.RTT, Leaving: leaving, Held: l.Held,
			Alive: !leaving && (m.State == cluster.StateAlive || m.State == cluster.StateSuspect)}
		v.Lanes[scheduler.LaneNative] = LaneLoad{Slots: l.Executors, Running: l.ExecutorsBusy, Queued: l.QueuedNative}
		v.Lanes[scheduler.LaneWorkers] = LaneLoad{Slots: l.Workers, Running: l.WorkersBusy, Queued: l.Queued}
		out = append(out, v)
	}
	return out
}
