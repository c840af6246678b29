// Queued: the tasks waiting for a slot, which a node gossips as its load.
package scheduler

// Queued is the number of tasks waiting in the lanes' queues now, native
// and Python together.
func (s *Scheduler) Queued() int {
	n := 0
	for l := range s.pool.lanes {
		n += len(s.pool.lanes[l].jobs)
	}
	return n
}
