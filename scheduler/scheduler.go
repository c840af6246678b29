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
	peers inflight // tasks each peer runs for this node now
	wake  waker    // calls holding tasks wait on it for a peer's room
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
	tasksDone   atomic.Int64
	tasksFailed atomic.Int64
	rowsIn      atomic.Int64
	bytesIn     atomic.Int64
	bytesOut    atomic.Int64
	// Tasks sent to peers, tasks peers sent here, and what went wrong.
	spilledOut    atomic.Int64
	spilledIn     atomic.Int64
	spillsRefused atomic.Int64
	peerFailures  atomic.Int64
	peerRefusals  atomic.Int64
	held          atomic.Int64 // tasks calls hold for placement now
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
	// TasksDone counts tasks that succeeded; TasksFailed those that
	// failed for good (after their retries).
	TasksDone   int64 `json:"tasks_done_total"`
	TasksFailed int64 `json:"tasks_failed_total"`
	// RowsIn and BytesIn count the input batches admitted; BytesOut the
	// output batches written (Rows their rows). Bytes are Arrow buffer
	// sizes, not wire bytes.
	RowsIn   int64 `json:"rows_in_total"`
	BytesIn  int64 `json:"bytes_in_total"`
	BytesOut int64 `json:"bytes_out_total"`
	// SpilledOut counts tasks sent to peers; SpilledIn tasks peers sent
	// here, SpillsRefused those refused of them. PeerFailures counts tasks
	// whose peer was lost, PeerRefusals those a peer refused: both then
	// ran elsewhere (or failed their call when out of retries).
	SpilledOut    int64 `json:"tasks_spilled_out"`
	SpilledIn     int64 `json:"tasks_spilled_in"`
	SpillsRefused int64 `json:"spills_refused"`
	PeerFailures  int64 `json:"peer_failures"`
	PeerRefusals  int64 `json:"peer_refusals"`
	// HeldTasks is the tasks calls hold now for want of a slot here or
	// room on a peer: tasks that could still run elsewhere. A node with
	// some is a busy node that room reports go to.
	HeldTasks int64 `json:"held_tasks"`
	// Lanes is each lane's load now: what peers read to place tasks here.
	Lanes []LaneStats `json:"lanes"`
}

// LaneStats is one lane's load.
type LaneStats struct {
	Lane    string `json:"lane"` // Lane.String()
	Slots   int    `json:"slots"`
	Running int    `json:"running"`
	Queued  int    `json:"queued"`
}

// New starts a scheduler and its executors.
func New(cfg Config, log *zap.Logger) (*Scheduler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Scheduler{cfg: cfg, log: log, pool: newPool(cfg.Executors, cfg.Workers, cfg.QueueDepth, cfg.OnRoom)}, nil
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
		TasksDone:   s.stats.tasksDone.Load(),
		TasksFailed: s.stats.tasksFailed.Load(),
		RowsIn:      s.stats.rowsIn.Load(),
		BytesIn:     s.stats.bytesIn.Load(),
		BytesOut:    s.stats.bytesOut.Load(),

		SpilledOut:    s.stats.spilledOut.Load(),
		SpilledIn:     s.stats.spilledIn.Load(),
		SpillsRefused: s.stats.spillsRefused.Load(),
		PeerFailures:  s.stats.peerFailures.Load(),
		PeerRefusals:  s.stats.peerRefusals.Load(),
		HeldTasks:     s.stats.held.Load(),
		Lanes:         s.pool.stats(),
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
