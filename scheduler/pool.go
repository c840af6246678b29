// Pool: the executor goroutines shared by every call.
package scheduler

import (
	"sync"
)

// job is one unit of work on the pool. run must not block on the caller.
type job func()

// pool runs jobs on a fixed number of goroutines.
type pool struct {
	jobs chan job
	wg   sync.WaitGroup
}

func newPool(executors, depth int) *pool {
	p := &pool{jobs: make(chan job, depth)}
	p.wg.Add(executors)
	for i := 0; i < executors; i++ {
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				j()
			}
		}()
	}
	return p
}

// close stops accepting jobs and waits for the queued ones to finish.
func (p *pool) close() {
	close(p.jobs)
	p.wg.Wait()
}
