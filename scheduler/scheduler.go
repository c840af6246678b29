// Scheduler: the shared executor pool, admission of calls, and counters.
package scheduler

import (
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
)

// Scheduler runs calls on a shared pool of executors. It is safe for
// concurrent use. Close it after every Run has returned.
type Scheduler struct {
	cfg  Config
	log  *zap.Logger
	pool *pool
	// costs holds a *costCell per function id (udf.Costed.ID): what the
	// function's tasks cost, shared by every call of it.
	costs sync.Map

	mu     sync.Mutex
	closed bool
	calls  sync.WaitGroup
	active int

	stats counters
}

type counters struct {
	callsTotal  atomic.Int64
	callsFailed atomic.Int64
	batches     atomic.Int64
	rows        atomic.Int64
	tasks       atomic.Int64
	tasksActive atomic.Int64
	nulledRows  atomic.Int64
	retries     atomic.Int64
}

// Stats is a snapshot of the scheduler's counters.
type Stats struct {
	// Executors counts the goroutines that run tasks, of both lanes.
	Executors   int   `json:"executors"`
	CallsActive int   `json:"inflight_calls"`
	TasksActive int64 `json:"inflight_tasks"`
	CallsTotal  int64 `json:"calls_total"`
	CallsFailed int64 `json:"calls_failed"`
	Batches     int64 `json:"batches_total"`
	Rows        int64 `json:"rows_total"`
	Tasks       int64 `json:"tasks_total"`
	NulledRows  int64 `json:"nulled_rows_total"`
	Retries     int64 `json:"task_retries_total"`
}

// New starts a scheduler and its executors.
func New(cfg Config, log *zap.Logger) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Scheduler{cfg: cfg, log: log, pool: newPool(cfg.Executors, cfg.Workers, cfg.QueueDepth)}, nil
}

// Executors is the number of goroutines that run tasks: the executors for
// native functions and one per Python worker.
func (s *Scheduler) Executors() int { return s.cfg.Executors + s.cfg.Workers }

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	active := s.active
	s.mu.Unlock()
	return Stats{
		Executors:   s.Executors(),
		CallsActive: active,
		TasksActive: s.stats.tasksActive.Load(),
		CallsTotal:  s.stats.callsTotal.Load(),
		CallsFailed: s.stats.callsFailed.Load(),
		Batches:     s.stats.batches.Load(),
		Rows:        s.stats.rows.Load(),
		Tasks:       s.stats.tasks.Load(),
		NulledRows:  s.stats.nulledRows.Load(),
		Retries:     s.stats.retries.Load(),
	}
}

// enter admits a call, or says why not.
func (s *Scheduler) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.active >= s.cfg.MaxCalls {
		return ErrOverCapacity
	}
	s.active++
	s.calls.Add(1)
	return nil
}

func (s *Scheduler) leave() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
	s.calls.Done()
}

// Close refuses new calls, waits for running ones, then stops the executors.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.calls.Wait()
	s.pool.close()
}
