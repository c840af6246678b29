// Measured costs of functions, shared by their calls: the thin shell that
// feeds each function's CostEstimator and reads it.
package scheduler

import (
	"sync"
	"time"
)

// costCell is one function's estimator, safe for concurrent use.
type costCell struct {
	mu  sync.Mutex
	est CostEstimator
}

func (c *costCell) observe(rows int64, work time.Duration) {
	c.mu.Lock()
	c.est.Observe(rows, float64(work))
	c.mu.Unlock()
}

func (c *costCell) estimate() Cost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.est.Estimate()
}

// costOf returns the cost cell of the function whose id is id.
func (s *Scheduler) costOf(id string) *costCell {
	if v, ok := s.costs.Load(id); ok {
		return v.(*costCell)
	}
	v, _ := s.costs.LoadOrStore(id, new(costCell))
	return v.(*costCell)
}

// Cost is the measured cost of the function whose id is id (udf.Costed.ID);
// Tasks is zero when none of its tasks was measured yet.
func (s *Scheduler) Cost(id string) Cost {
	if v, ok := s.costs.Load(id); ok {
		return v.(*costCell).estimate()
	}
	return Cost{}
}
