// Pool: the goroutines that run every call's tasks, in one lane per kind
// of capacity (native cores, Python workers).
package scheduler

import (
	"sync"
	"sync/atomic"
)

// job is one unit of work on the pool. run must not block on the caller.
type job func()

// Lane is a kind of capacity a task runs against.
type Lane int

const (
	// LaneNative runs native functions, one task per executor (core).
	LaneNative Lane = iota
	// LaneWorkers runs functions of the Python worker pool (udf.Costed),
	// one task per worker: a task queued for a worker holds no executor.
	LaneWorkers
	lanes
)

func (l Lane) String() string { return [...]string{"native", "workers"}[l] }

// lane is one queue and the goroutines that serve it.
type lane struct {
	jobs    chan job
	slots   int
	running *atomic.Int64 // jobs running now
}

// pool runs jobs on a fixed number of goroutines per lane.
type pool struct {
	lanes [lanes]lane
	wg    sync.WaitGroup
}

// newPool starts executors goroutines on the native lane and workers on
// the workers lane, each lane queueing up to depth jobs. onRoom, when not
// nil, is told of a lane left with a free slot and an empty queue.
func newPool(executors, workers, depth int, onRoom func(Lane)) *pool {
	p := &pool{}
	for l, n := range [lanes]int{executors, workers} {
		p.lanes[l] = lane{jobs: make(chan job, depth), slots: n, running: new(atomic.Int64)}
		p.wg.Add(n)
		for i := 0; i < n; i++ {
			go func(l Lane, ln lane) {
				defer p.wg.Done()
				for j := range ln.jobs {
					ln.running.Add(1)
					j()
					ln.running.Add(-1)
					if onRoom != nil && len(ln.jobs) == 0 {
						onRoom(l)
					}
				}
			}(Lane(l), p.lanes[l])
		}
	}
	return p
}

// snapshot is what placement sees of lane l now.
func (p *pool) snapshot(l Lane) Snapshot {
	ln := p.lanes[l]
	return Snapshot{Lane: l, Slots: ln.slots, Running: int(ln.running.Load()), Queued: len(ln.jobs)}
}

// stats is every lane's load now, in Lane order.
func (p *pool) stats() []LaneStats {
	out := make([]LaneStats, 0, lanes)
	for l := Lane(0); l < lanes; l++ {
		sn := p.snapshot(l)
		out = append(out, LaneStats{Lane: l.String(), Slots: sn.Slots, Running: sn.Running, Queued: sn.Queued})
	}
	return out
}

// close stops accepting jobs and waits for the queued ones to finish.
func (p *pool) close() {
	for l := range p.lanes {
		close(p.lanes[l].jobs)
	}
	p.wg.Wait()
}
