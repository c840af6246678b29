// Where the node learns its peers: a PeerSource. Until membership lands,
// the static source polls a fixed list of Flight addresses.
package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/scheduler"
)

// PeerSource says which peers there are and how loaded they are. The
// remote layer reads it for every placement; it must be cheap and safe for
// concurrent use. Membership (gossip) will be one; staticPeers is the
// interim one.
type PeerSource interface {
	Views() []PeerInfo
}

// PeerInfo is one peer as last heard of.
type PeerInfo struct {
	Name       string // unique in the cluster; the static source uses the address
	FlightAddr string // host:port of its Flight service
	// Lanes is its load per lane, indexed by scheduler.Lane.
	Lanes [2]LaneLoad
	// Warm lists the functions it holds (names), when known.
	Warm []string
	// Alive is false once it stopped answering: tasks in flight to it are
	// re-run elsewhere.
	Alive bool
}

// LaneLoad is a peer's load in one lane.
type LaneLoad struct {
	Slots, Running, Queued int
}

// pollEvery is how often the static source reads each peer's load.
const pollEvery = 200 * time.Millisecond

// staticPeers polls the cluster_status of a fixed list of peers. A peer is
// alive while its last poll answered. It is interim: membership replaces it.
type staticPeers struct {
	client *flight.PeerClient
	log    *zap.Logger

	mu    sync.Mutex
	views []PeerInfo // in the order of the addresses, which is name order
	wg    sync.WaitGroup
}

// newStaticPeers starts polling addrs until ctx ends; Wait waits for it.
func newStaticPeers(ctx context.Context, addrs []string, client *flight.PeerClient, log *zap.Logger) *staticPeers {
	sp := &staticPeers{client: client, log: log}
	for _, a := range sortedUnique(addrs) {
		sp.views = append(sp.views, PeerInfo{Name: a, FlightAddr: a})
	}
	for i := range sp.views {
		sp.wg.Add(1)
		go sp.poll(ctx, i)
	}
	return sp
}

// Views returns a copy of the peers' views.
func (sp *staticPeers) Views() []PeerInfo {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]PeerInfo(nil), sp.views...)
}

// Wait waits for the pollers after their context ended.
func (sp *staticPeers) Wait() { sp.wg.Wait() }

// poll reads peer i's cluster_status every pollEvery until ctx ends.
func (sp *staticPeers) poll(ctx context.Context, i int) {
	defer sp.wg.Done()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	addr := sp.views[i].FlightAddr
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := sp.client.ClusterStatus(pctx, addr)
		cancel()
		sp.mu.Lock()
		v := &sp.views[i]
		if wasAlive := v.Alive; err != nil || len(st.Nodes) == 0 {
			v.Alive = false
			if wasAlive && ctx.Err() == nil {
				sp.log.Warn("peer stopped answering", zap.String("peer", addr), zap.Error(err))
			}
		} else {
			if !wasAlive {
				sp.log.Info("peer answers", zap.String("peer", addr))
			}
			n := st.Nodes[0]
			v.Alive, v.Warm = true, n.Functions
			for _, l := range n.Lanes {
				for lane := scheduler.LaneNative; lane <= scheduler.LaneWorkers; lane++ {
					if l.Lane == lane.String() {
						v.Lanes[lane] = LaneLoad{Slots: l.Slots, Running: l.Running, Queued: l.Queued}
					}
				}
			}
		}
		sp.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sortedUnique sorts addrs and drops repeats.
func sortedUnique(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}
