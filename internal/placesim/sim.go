// The simulation: nodes, events and the dispatch loop of an origin.
package placesim

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/quiver-udf/quiver/scheduler"
)

// Config of one simulation.
type Config struct {
	Nodes   int           // nodes in the cluster
	Slots   int           // slots per node
	Origins int           // nodes the tasks arrive at (the first ones)
	Tasks   int           // tasks in all
	MinCost time.Duration // task costs are log-uniform between these
	MaxCost time.Duration
	Arrival time.Duration // tasks arrive evenly over this span; 0: all at once
	Stale   time.Duration // views refresh this often
	RTT     time.Duration // round trip between two nodes
	Bytes   int64         // input bytes of a task
	Seed    uint64
	Policy  scheduler.Placement // nil: scheduler.Hybrid{}
	// NoRoom: nodes send no room reports (scheduler.RoomFan); a freed
	// slot waits for its next load report.
	NoRoom bool
}

// Result of a simulation.
type Result struct {
	Makespan  time.Duration
	Ideal     time.Duration
	Spilled   int // tasks run on a node other than their origin
	Refused   int // spilled tasks a peer refused
	Decisions int // calls of Place
	// Wall is the real time the simulation took.
	Wall time.Duration
}

// Ratio is the makespan over the ideal.
func (r Result) Ratio() float64 { return float64(r.Makespan) / float64(r.Ideal) }

func (r Result) String() string {
	return fmt.Sprintf("makespan %v, ideal %v (%.3fx), %d spilled, %d refused, %d decisions in %v",
		r.Makespan.Round(time.Millisecond), r.Ideal.Round(time.Millisecond), r.Ratio(), r.Spilled, r.Refused, r.Decisions, r.Wall.Round(time.Millisecond))
}

type task struct {
	origin int
	cost   int64
}

type node struct {
	running int
	queue   []int // tasks a peer sent, waiting for a slot here
	pending []int // tasks that arrived here, not yet placed
}

type sim struct {
	cfg    Config
	policy scheduler.Placement
	tasks  []task
	nodes  []node
	// views[o] is what origin o knows of the others at the last refresh
	// (every node but o, in order), with its own in-flight counts.
	views  [][]scheduler.PeerView
	events eventHeap
	now    int64
	rng    *rand.Rand
	res    Result
	done   int
	busy   int   // origins with tasks waiting at the last refresh
	busyOf []int // which origins those are
}

// Run simulates cfg.
func Run(cfg Config) (Result, error) {
	if cfg.Nodes < 1 || cfg.Slots < 1 || cfg.Origins < 1 || cfg.Origins > cfg.Nodes || cfg.Tasks < 1 || cfg.MinCost <= 0 || cfg.MaxCost < cfg.MinCost || cfg.Stale <= 0 {
		return Result{}, fmt.Errorf("placesim: bad config %+v", cfg)
	}
	start := time.Now()
	s := &sim{cfg: cfg, policy: cfg.Policy, rng: rand.New(rand.NewPCG(cfg.Seed, 1))}
	if s.policy == nil {
		s.policy = scheduler.Hybrid{}
	}
	s.nodes = make([]node, cfg.Nodes)
	s.views = make([][]scheduler.PeerView, cfg.Origins)
	for o := range s.views {
		for i := range s.nodes {
			if i != o {
				s.views[o] = append(s.views[o], scheduler.PeerView{Name: fmt.Sprint(i), Slots: cfg.Slots, RTTNs: int64(cfg.RTT)})
			}
		}
	}
	var work, longest, last int64
	lo, hi := math.Log(float64(cfg.MinCost)), math.Log(float64(cfg.MaxCost))
	for i := 0; i < cfg.Tasks; i++ {
		c := int64(math.Exp(lo + (hi-lo)*s.rng.Float64()))
		t := task{origin: i % cfg.Origins, cost: c}
		s.tasks = append(s.tasks, t)
		at := int64(0)
		if cfg.Arrival > 0 {
			at = int64(cfg.Arrival) * int64(i) / int64(cfg.Tasks)
		}
		s.push(event{at: at, kind: evArrive, task: i})
		work += c
		longest = max(longest, c)
		last = max(last, at+c)
	}
	s.push(event{at: int64(cfg.Stale), kind: evRefresh})
	for s.done < cfg.Tasks {
		e := heap.Pop(&s.events).(event)
		s.now = e.at
		s.handle(e)
	}
	ideal := max(work/int64(cfg.Nodes*cfg.Slots), longest, last)
	s.res.Makespan, s.res.Ideal, s.res.Wall = time.Duration(s.now), time.Duration(ideal), time.Since(start)
	return s.res, nil
}

func (s *sim) push(e event) { heap.Push(&s.events, e) }

func (s *sim) handle(e event) {
	t := e.task
	switch e.kind {
	case evArrive:
		o := s.tasks[t].origin
		s.nodes[o].pending = append(s.nodes[o].pending, t)
		s.dispatch(o)
	case evRefresh:
		s.busyOf = s.busyOf[:0]
		for o := range s.views {
			if len(s.nodes[o].pending) > 0 {
				s.busyOf = append(s.busyOf, o)
			}
		}
		s.busy = len(s.busyOf)
		for o, vs := range s.views {
			for i := range s.nodes {
				if i != o {
					report(&vs[viewIndex(o, i)], s.nodes[i].running, len(s.nodes[i].queue)+len(s.nodes[i].pending))
				}
			}
		}
		for i := 0; i < s.cfg.Origins; i++ {
			s.dispatch(i)
		}
		if s.done < s.cfg.Tasks {
			s.push(event{at: s.now + int64(s.cfg.Stale), kind: evRefresh})
		}
	case evReceive: // a spilled task reaches peer e.node
		n := &s.nodes[e.node]
		switch {
		case n.running < s.cfg.Slots && len(n.queue) == 0:
			s.start(e.node, t)
		case len(n.queue) < s.cfg.Slots:
			n.queue = append(n.queue, t)
		default:
			s.res.Refused++
			s.push(event{at: s.now + int64(s.cfg.RTT)/2, kind: evRefused, task: t, node: e.node})
		}
	case evRefused:
		o := s.tasks[t].origin
		// A refusal says the peer is full: so it counts until its next report.
		v := &s.views[o][viewIndex(o, e.node)]
		v.Inflight--
		v.Queued += v.Slots
		s.nodes[o].pending = append([]int{t}, s.nodes[o].pending...)
		s.dispatch(o)
	case evFinish: // task t ends on node e.node
		n := &s.nodes[e.node]
		n.running--
		if len(n.queue) > 0 {
			next := n.queue[0]
			n.queue = n.queue[1:]
			s.start(e.node, next)
		}
		o := s.tasks[t].origin
		if o == e.node {
			s.done++
		} else {
			s.push(event{at: s.now + int64(s.cfg.RTT)/2, kind: evReturn, task: t, node: e.node})
		}
		s.dispatch(e.node)
		s.room(e.node)
	case evRoom: // node e.node's room report reaches origin e.task
		o := e.task
		report(&s.views[o][viewIndex(o, e.node)], e.running, 0) // sent with nothing queued
		s.dispatch(o)
	case evReturn:
		o := s.tasks[t].origin
		s.views[o][viewIndex(o, e.node)].Inflight--
		s.done++
		s.dispatch(o)
	}
}

// report sets v to a peer's load as it reported it: its own in-flight
// count is what this origin had sent it then.
func report(v *scheduler.PeerView, running, queued int) {
	v.Running, v.Queued = running, queued
	v.InflightAtReport = v.Inflight
}

// room sends node i's room report to RoomFan of the origins busy at the
// last refresh when a slot is free there and nothing is queued, as the
// node's OnRoom does.
func (s *sim) room(i int) {
	n := &s.nodes[i]
	if s.cfg.NoRoom || n.running >= s.cfg.Slots || len(n.queue) > 0 || len(n.pending) > 0 || len(s.busyOf) == 0 {
		return
	}
	for k := 0; k < scheduler.RoomFan; k++ {
		if o := s.busyOf[s.rng.IntN(len(s.busyOf))]; o != i {
			s.push(event{at: s.now + int64(s.cfg.RTT)/2, kind: evRoom, task: o, node: i, running: n.running})
		}
	}
}

func (s *sim) start(n, t int) {
	s.nodes[n].running++
	s.push(event{at: s.now + s.tasks[t].cost, kind: evFinish, task: t, node: n})
}

// dispatch places origin o's pending tasks in order until one must wait
// here for a slot.
func (s *sim) dispatch(o int) {
	n := &s.nodes[o]
	for len(n.pending) > 0 {
		t := n.pending[0]
		snap := scheduler.Snapshot{Lane: scheduler.LaneWorkers, Slots: s.cfg.Slots, Running: n.running + len(n.queue), Peers: s.views[o], Busy: s.busy, Rand: s.rng.Uint64()}
		s.res.Decisions++
		d := s.policy.Place(snap, scheduler.TaskInfo{Func: "f", Rows: 1, Bytes: s.cfg.Bytes, CostNs: s.tasks[t].cost})
		if d.Local() {
			if n.running >= s.cfg.Slots || len(n.queue) > 0 {
				return
			}
			n.pending = n.pending[1:]
			s.start(o, t)
			continue
		}
		p := peerIndex(d.Peer)
		s.views[o][viewIndex(o, p)].Inflight++
		n.pending = n.pending[1:]
		s.res.Spilled++
		s.push(event{at: s.now + int64(s.cfg.RTT)/2, kind: evReceive, task: t, node: p})
	}
}

// viewIndex is where node i is in origin o's views.
func viewIndex(o, i int) int {
	if i > o {
		return i - 1
	}
	return i
}

func peerIndex(name string) int {
	n := 0
	for _, c := range name {
		n = n*10 + int(c-'0')
	}
	return n
}
