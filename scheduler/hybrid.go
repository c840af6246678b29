// Hybrid: the cluster's placement. Run here while a local slot is free;
// past that, spill to a peer with a free slot when moving the task costs
// less than waiting for one here.
package scheduler

// Defaults of Hybrid, after Ray's hybrid scheduling policy.
const (
	// DefaultSpreadThreshold: peers used less than this fraction of their
	// slots count as equally idle, so that many origins spread over them
	// rather than all picking the single least loaded one.
	DefaultSpreadThreshold = 0.5
	// DefaultTopKFraction: the pick is random among this fraction of the
	// candidates, the least loaded first (at least one).
	DefaultTopKFraction = 0.2
	// DefaultSample bounds the peers looked at for one decision: a node
	// with more peers looks at that many, chosen at random (the power of d
	// choices), so a decision costs the same at 4 peers and at 1,000.
	DefaultSample = 16
	// DefaultRTTNs and DefaultMoveNsPerByte stand for a peer not measured
	// yet: a LAN round trip and 1 GB/s.
	DefaultRTTNs         = 250_000
	DefaultMoveNsPerByte = 1.0
	// DefaultMoveShare: a task moves only when moving it costs at most this
	// share of running it (a 20 ms task moves over a LAN, a 50 us one does
	// not).
	DefaultMoveShare = 0.5
	// PeerQueue is how many tasks per slot a peer is sent beyond its
	// slots: a slot freed there finds the next task waiting instead of
	// idling until the next report reaches an origin (with 100 ms stale
	// views this took the simulated makespan at 300 nodes from 1.37x the
	// ideal to 1.14x). A peer accepts twice that before it refuses
	// (Config.SpillBacklog).
	PeerQueue = 1
	// DefaultUnknownCostNs stands for the cost of a Python task whose
	// function has not been measured yet.
	DefaultUnknownCostNs = 10_000_000
)

// Hybrid places a task here while this node has a free slot for its lane.
// Past that, a task goes to a peer when (1) it came from no
// peer (a spilled task is never forwarded), (2) moving it (the peer's round
// trip plus its bytes at the peer's measured cost per byte) costs at most
// MoveShare of running it and less than waiting here for a slot, and (3) a
// peer has room (a free slot, or one of PeerQueue waiting places per
// slot), counting the tasks this node has in flight there now in place of
// its share of the peer's report (PeerView.Inflight) and taking only its
// share of the room free at the report when other nodes have tasks waiting too (Snapshot.Busy).
// Among those peers the pick is random among the TopKFraction least
// loaded, where every peer below SpreadThreshold counts as equally loaded
// and a peer with the function warm comes first among equals. A task of
// unknown cost stays here when it is native and counts as
// DefaultUnknownCostNs when it runs in Python. The zero value uses the
// defaults.
type Hybrid struct {
	SpreadThreshold float64
	TopKFraction    float64
	Sample          int
	MoveShare       float64
}

// candidate is a peer with a free slot, with its sort key.
type candidate struct {
	idx  int
	load float64 // its utilization, 0 below the spread threshold
	cold bool
}

// Place decides where t runs.
func (h Hybrid) Place(s Snapshot, t TaskInfo) Decision {
	if s.Running+s.Queued < s.Slots || t.Spilled || len(s.Peers) == 0 {
		return Decision{}
	}
	if t.CostNs <= 0 {
		// Unknown: a native task is cheap until measured; a Python task
		// (its function's first batch) is assumed worth moving.
		if s.Lane != LaneWorkers {
			return Decision{}
		}
		t.CostNs = DefaultUnknownCostNs
	}
	share := h.MoveShare
	if share <= 0 {
		share = DefaultMoveShare
	}
	wait := localWaitNs(s, t.CostNs)
	var cands [64]candidate
	n := h.candidates(s, t, share, wait, cands[:h.sample(len(s.Peers))])
	if n == 0 {
		return Decision{}
	}
	c := cands[:n]
	sortCandidates(c)
	frac := h.TopKFraction
	if frac <= 0 {
		frac = DefaultTopKFraction
	}
	k := int(frac*float64(n) + 0.999999)
	if k < 1 {
		k = 1
	}
	pick := c[int((s.Rand>>32)%uint64(k))]
	return Decision{Peer: s.Peers[pick.idx].Name}
}

// localWaitNs is how long t would wait here for a slot: the tasks ahead of
// it, spread over the lane's slots, each as costly as t. A lane without
// slots (no Python workers) never frees one.
func localWaitNs(s Snapshot, cost int64) float64 {
	if s.Slots <= 0 {
		return 1e18
	}
	ahead := s.Running + s.Queued - s.Slots + 1
	rounds := (ahead + s.Slots - 1) / s.Slots
	return float64(rounds) * float64(cost)
}

// sample is how many peers one decision looks at.
func (h Hybrid) sample(peers int) int {
	d := h.Sample
	if d <= 0 {
		d = DefaultSample
	}
	if d > 64 {
		d = 64
	}
	if peers < d {
		return peers
	}
	return d
}

// candidates fills out with the peers worth moving t to, out of a random
// sample of len(out) peers (all of them when there are no more), and
// returns how many it found.
func (h Hybrid) candidates(s Snapshot, t TaskInfo, share, wait float64, out []candidate) int {
	spread := h.SpreadThreshold
	if spread <= 0 {
		spread = DefaultSpreadThreshold
	}
	peers := len(s.Peers)
	x := s.Rand | 1
	n := 0
	for i := range out {
		idx := i
		if len(out) < peers {
			// xorshift64 from the caller's random number: a pure function
			// of the snapshot. Repeats are harmless.
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			idx = int(x % uint64(peers))
		}
		p := &s.Peers[idx]
		used := max(p.Running+p.Queued-p.InflightAtReport, 0) + p.Inflight
		room := p.Slots * (1 + PeerQueue)
		if p.Slots <= 0 || used >= room {
			continue
		}
		// Of the slots free at its report, this node takes its share: as
		// many nodes with tasks waiting would fill them as well.
		if busy := s.Busy; busy > 1 {
			free := room - max(p.Running+p.Queued-p.InflightAtReport, 0)
			if p.Inflight-p.InflightAtReport >= (free+busy-1)/busy {
				continue
			}
		}
		rtt, perByte := float64(p.RTTNs), p.MoveNsPerByte
		if rtt <= 0 {
			rtt = DefaultRTTNs
		}
		if perByte <= 0 {
			perByte = DefaultMoveNsPerByte
		}
		move := rtt + perByte*float64(t.Bytes)
		if move > share*float64(t.CostNs) || move >= wait {
			continue
		}
		load := float64(used) / float64(p.Slots)
		if load < spread {
			load = 0
		}
		out[n] = candidate{idx: idx, load: load, cold: !p.Warm}
		n++
	}
	return n
}

// sortCandidates orders c least loaded first, warm before cold among
// equals, then by index: an insertion sort, c is short.
func sortCandidates(c []candidate) {
	less := func(a, b candidate) bool {
		if a.load != b.load {
			return a.load < b.load
		}
		if a.cold != b.cold {
			return !a.cold
		}
		return a.idx < b.idx
	}
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && less(c[j], c[j-1]); j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}
