// The cluster in cluster_status: this node's membership, its peers as
// gossiped, and totals. Plain types: flight does not know how membership
// works, the node's wiring adapts it.
package flight

import "github.com/quiver-udf/quiver/udf"

// Membership is the cluster as this node sees it (Config.Members).
type Membership struct {
	// Name and Gossip are this node's name and gossip address.
	Name, Gossip string
	// Peers are the other members, in order of name.
	Peers []PeerStatus
}

// PeerStatus is another member in ClusterStatus, as it last gossiped its
// load (every 100 ms at most).
type PeerStatus struct {
	Name string `json:"name"`
	// Address is its Flight TCP address.
	Address string `json:"address"`
	Gossip  string `json:"gossip"`
	// State is "alive", "suspect", "dead" or "left".
	State       string `json:"state"`
	Version     string `json:"version"`
	Workers     int    `json:"workers"`
	WorkersBusy int    `json:"workers_busy"`
	Executors   int    `json:"executors"`
	Queued      int    `json:"queued"`
	// TasksSpilledIn counts tasks peers sent it, TasksSpilledOut tasks it
	// sent to peers.
	TasksSpilledIn  int64 `json:"tasks_spilled_in"`
	TasksSpilledOut int64 `json:"tasks_spilled_out"`
	// ObjectStoreBytes of ObjectStoreLimitBytes of its store's memory are
	// used.
	ObjectStoreBytes      int64 `json:"object_store_bytes"`
	ObjectStoreLimitBytes int64 `json:"object_store_limit_bytes"`
	// WarmFunctions is the number of functions it has loaded.
	WarmFunctions int `json:"warm_functions"`
	// RTTMs is this node's last probe's round trip to it; 0 when unknown.
	RTTMs float64 `json:"rtt_ms"`
}

// ClusterTotals sum the cluster: every node listed, those alive (or
// suspect), and the workers and queues of those alive.
type ClusterTotals struct {
	Nodes       int `json:"nodes"`
	NodesAlive  int `json:"nodes_alive"`
	Workers     int `json:"workers"`
	WorkersBusy int `json:"workers_busy"`
	Queued      int `json:"queued"`
}

// workersBusy is the number of live workers running a task.
func workersBusy(p udf.PoolStats) int {
	return max(0, int(p.Workers)-p.Idle)
}

// totals sums this node (self) and its peers.
func totals(self NodeStatus, peers []PeerStatus) ClusterTotals {
	t := ClusterTotals{Nodes: 1 + len(peers), NodesAlive: 1, Workers: int(self.Workers),
		WorkersBusy: self.WorkersBusy, Queued: self.Queued}
	for _, p := range peers {
		if p.State != "alive" && p.State != "suspect" {
			continue
		}
		t.NodesAlive++
		t.Workers += p.Workers
		t.WorkersBusy += p.WorkersBusy
		t.Queued += p.Queued
	}
	return t
}
