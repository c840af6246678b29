// Borrowing a slot: capacity taken out of a lane for work that runs
// outside the scheduler (a worker leased to a client), so that the lane's
// tasks do not count on it meanwhile.
package scheduler

import (
	"sync"
	"time"
)

// Borrow takes a slot of lane l if one is free now (no task queued, fewer
// running than slots), waiting at most wait for it to be handed over. The
// slot counts as running until release is called. ok is false when no slot
// was free; nothing is held then.
func (s *Scheduler) Borrow(l Lane, wait time.Duration) (release func(), ok bool) {
	if l < 0 || l >= lanes {
		return nil, false
	}
	sn := s.pool.snapshot(l)
	if sn.Queued > 0 || sn.Running >= sn.Slots {
		return nil, false
	}
	if s.enter() != nil {
		return nil, false
	}
	var (
		mu        sync.Mutex
		abandoned bool
	)
	started, back := make(chan struct{}), make(chan struct{})
	job := func() {
		mu.Lock()
		if abandoned {
			mu.Unlock()
			return
		}
		close(started) // under mu: Borrow sees it handed over, or abandons it first
		mu.Unlock()
		<-back
	}
	select {
	case s.pool.lanes[l].jobs <- job:
	default: // the queue is full: not free after all
		s.leave()
		return nil, false
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var once sync.Once
	release = func() { once.Do(func() { close(back); s.leave() }) }
	select {
	case <-started:
		return release, true
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-started: // handed over just now
		return release, true
	default:
		abandoned = true
		s.leave()
		return nil, false
	}
}
