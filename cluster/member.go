// Member: one node of the cluster as this node sees it.
package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's state in the failure detector.
type State string

const (
	// StateAlive: the member answers probes.
	StateAlive State = "alive"
	// StateSuspect: the member missed probes; unless it refutes the
	// suspicion soon, it is declared dead.
	StateSuspect State = "suspect"
	// StateDead: the member was declared dead.
	StateDead State = "dead"
	// StateLeft: the member left on purpose.
	StateLeft State = "left"
)

// Member is one node of the cluster.
type Member struct {
	// Name is the node's unique name.
	Name string
	// GossipAddr is the HOST:PORT it gossips on.
	GossipAddr string
	State      State
	// Load is the node's last gossiped load.
	Load Load
	// RTT is the round trip of this node's last probe of it; zero when it
	// has not been probed yet (and for this node).
	RTT time.Duration
	// Reports counts the load records this node has had from it: a new
	// number is a new report.
	Reports uint64
	// Leaving: it announced that it leaves (Leave). It takes no new work
	// and finishes what it runs; its State stays alive until it is gone.
	Leaving bool
}

// memberOf copies memberlist's view of a node; call it only inside
// memberlist's callbacks.
// It reports whether the member announced it is leaving. n.State is not
// maintained by memberlist: the caller knows the state.
func memberOf(n *memberlist.Node) (Member, bool) {
	l, leaving := decodeLoad(n.Meta)
	return Member{Name: n.Name, GossipAddr: n.Address(), State: StateAlive, Load: l, Leaving: leaving}, leaving
}
