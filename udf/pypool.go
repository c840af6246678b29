// The pool of Python worker processes: prestarted, replaced when they die,
// stopped with the node.
package udf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrNoWorkers: no Python worker is alive and none could be started.
var ErrNoWorkers = errors.New("udf: no python workers")

// PoolConfig says how many workers to run and how.
type PoolConfig struct {
	// Workers is the number of worker processes; zero means one per core.
	Workers int
	// Python is the interpreter; empty means "python3". It must be able to
	// import quiver.
	Python string
	// Env is added to the node's environment for workers.
	Env []string
	// Output receives the workers' stdout and stderr; nil discards them.
	Output io.Writer
	// StartTimeout bounds a worker's start (interpreter, imports, READY);
	// zero means 60 s.
	StartTimeout time.Duration
}

func (c *PoolConfig) validate() error {
	if c.Workers < 0 {
		return errors.New("udf: negative worker count")
	}
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	return nil
}

// WorkerPool runs Python tasks on worker processes. It is safe for
// concurrent use; Close stops every worker.
type WorkerPool struct {
	cfg PoolConfig
	log *zap.Logger

	// mu guards the idle workers and the callers waiting for one. idle[i]
	// is what PickWorker sees of idleW[i].
	mu      sync.Mutex
	idle    []WorkerView
	idleW   []*pyWorker
	waiters []chan *pyWorker // FIFO; each receives at most one worker

	ctx    context.Context // cancelled by Close: stops starts in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // replacement goroutines

	nextID   atomic.Int64
	alive    atomic.Int64
	starting atomic.Int64
	restarts atomic.Int64
	tasks    atomic.Int64
	leases   atomic.Int64 // leases granted (pylease.go)
	leaseSeq atomic.Uint64
	startErr atomic.Pointer[error] // the last failed start, cleared by a good one
}

// PoolStats is a snapshot of the pool.
type PoolStats struct {
	Workers  int64 `json:"workers"`
	Starting int64 `json:"workers_starting"`
	Idle     int   `json:"workers_idle"`
	Restarts int64 `json:"worker_restarts"`
	Tasks    int64 `json:"python_tasks_total"`
	Leases   int64 `json:"worker_leases_total"`
}

// NewWorkerPool starts cfg.Workers workers in the background and returns at
// once; tasks wait for the first READY worker.
func NewWorkerPool(cfg PoolConfig, log *zap.Logger) (*WorkerPool, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &WorkerPool{cfg: cfg, log: log, ctx: ctx, cancel: cancel}
	for i := 0; i < cfg.Workers; i++ {
		p.spawn(0)
	}
	return p, nil
}

// Size is the configured number of workers.
func (p *WorkerPool) Size() int { return p.cfg.Workers }

// Stats returns a snapshot.
func (p *WorkerPool) Stats() PoolStats {
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	return PoolStats{Workers: p.alive.Load(), Starting: p.starting.Load(), Idle: idle,
		Restarts: p.restarts.Load(), Tasks: p.tasks.Load(), Leases: p.leases.Load()}
}

// spawn starts one worker in the background after delay, retrying with
// backoff while the pool is open.
func (p *WorkerPool) spawn(delay time.Duration) {
	p.starting.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.starting.Add(-1)
		for backoff := delay; ; {
			if backoff > 0 {
				select {
				case <-time.After(backoff):
				case <-p.ctx.Done():
					return
				}
			}
			id := int(p.nextID.Add(1))
			w, err := startWorker(p.ctx, p.cfg, id)
			if err == nil {
				if w.arena == nil {
					p.log.Warn("no shared-memory arena for a python worker; its tasks travel over its socket", zap.Int("worker", id))
				}
				p.startErr.Store(nil)
				p.alive.Add(1)
				p.put(w)
				return
			}
			if p.ctx.Err() != nil {
				return
			}
			p.startErr.Store(&err)
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			p.log.Error("python worker failed to start; retrying", zap.Error(err), zap.Duration("in", backoff))
		}
	}()
}

// acquire takes the idle worker PickWorker chooses for a task of fn,
// waiting while all are busy or starting. When no worker is alive and
// starting them fails, it gives up with ErrNoWorkers rather than wait for a
// start that may never succeed.
func (p *WorkerPool) acquire(ctx context.Context, fn string) (*pyWorker, error) {
	for {
		var w *pyWorker
		p.mu.Lock()
		if i := PickWorker(p.idle, fn); i >= 0 {
			w = p.idleW[i]
			p.removeIdle(i)
			p.mu.Unlock()
		} else {
			wait := make(chan *pyWorker, 1)
			p.waiters = append(p.waiters, wait)
			p.mu.Unlock()
			var err error
			if w, err = p.await(ctx, wait); err != nil {
				return nil, err
			}
		}
		if w.alive() {
			return w, nil
		}
		p.replace(w)
	}
}

// await waits for put to hand a worker to wait, which acquire queued.
func (p *WorkerPool) await(ctx context.Context, wait chan *pyWorker) (*pyWorker, error) {
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	for {
		var err error
		select {
		case w := <-wait:
			return w, nil
		case <-check.C:
			if errp := p.startErr.Load(); errp != nil && p.alive.Load() == 0 {
				err = fmt.Errorf("%w: %v", ErrNoWorkers, *errp)
			}
		case <-ctx.Done():
			err = ctx.Err()
		case <-p.ctx.Done():
			err = fmt.Errorf("%w: the pool is closed", ErrNoWorkers)
		}
		if err != nil {
			p.giveUp(wait)
			return nil, err
		}
	}
}

// giveUp withdraws wait from the waiters; a worker handed to it meanwhile
// goes back to the pool.
func (p *WorkerPool) giveUp(wait chan *pyWorker) {
	p.mu.Lock()
	if i := slices.Index(p.waiters, wait); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.release(<-wait)
}

// put hands a ready worker to the longest waiting caller, or makes it idle.
func (p *WorkerPool) put(w *pyWorker) {
	p.mu.Lock()
	if p.ctx.Err() != nil { // closed: Close stops the idle workers it finds, not this one
		p.mu.Unlock()
		p.replace(w)
		return
	}
	if len(p.waiters) > 0 {
		wait := p.waiters[0]
		p.waiters = slices.Delete(p.waiters, 0, 1)
		p.mu.Unlock()
		wait <- w
		return
	}
	p.idle = append(p.idle, WorkerView{ID: w.id, Warm: w.loaded})
	p.idleW = append(p.idleW, w)
	p.mu.Unlock()
}

// removeIdle drops idle worker i; p.mu is held.
func (p *WorkerPool) removeIdle(i int) {
	last := len(p.idle) - 1
	p.idle[i], p.idleW[i] = p.idle[last], p.idleW[last]
	p.idle[last], p.idleW[last] = WorkerView{}, nil
	p.idle, p.idleW = p.idle[:last], p.idleW[:last]
}

// release returns a healthy worker to the pool, or replaces a dead one.
func (p *WorkerPool) release(w *pyWorker) {
	if w.alive() && p.ctx.Err() == nil {
		p.put(w)
		return
	}
	p.replace(w)
}

func (p *WorkerPool) replace(w *pyWorker) {
	w.kill()
	w.closeArena()
	p.alive.Add(-1)
	if p.ctx.Err() != nil {
		return
	}
	p.restarts.Add(1)
	p.log.Warn("python worker died; starting a replacement", zap.Int("worker", w.id), zap.Int("pid", w.pid))
	p.spawn(0)
}

// Task is one unit of Python work: a function and its arguments.
type Task struct {
	FnID string
	Name string
	Blob []byte // sent with LOAD the first time a worker sees FnID
	Args []byte // Arrow IPC stream of the arguments
	// Encode, when set, writes the arguments' IPC stream in place of Args:
	// straight into the worker's arena where they fit.
	Encode func(io.Writer) error
	// Decode, when set, reads the result's IPC stream while the worker is
	// still held, and Result.IPC stays nil. The bytes may be the worker's
	// arena: they are valid only during the call and must be copied (an
	// Arrow IPC reader does). An error from Decode fails the task, not the
	// worker.
	Decode func(ipc []byte) error
	// Context is the caller's task context, a JSON object sent with TASK;
	// nil if none.
	Context []byte
	// Concurrency is the rows the worker runs at once, sent with LOAD; 0 or
	// 1: one at a time.
	Concurrency int
	// Parts, when set, makes the task a group: the rows of consecutive
	// tasks of the arguments, in order, each a call of the function of its
	// own (PyFunc.EvalParts). Nil: the arguments are one task.
	Parts []int64
}

// Result is a worker's answer to a Task.
type Result struct {
	IPC    []byte  // Arrow IPC stream: one column, the result
	Rows   int64   // rows the worker says it returned
	WorkMs float64 // time spent in the user's function
	// Parts is each part's outcome when the task was a group (Task.Parts):
	// a part that raised has Err and null rows in the result.
	Parts []PartResult
}

// PartResult is the outcome of one part of a group task.
type PartResult struct {
	WorkMs float64
	Err    *PyError // nil when the part succeeded
}

// Run executes t on an idle worker. A worker that dies fails the task with
// ErrWorkerDied; a function that raises fails it with a *PyError. When ctx
// ends while the task runs, the worker is killed (a Python function cannot
// be interrupted) and replaced.
func (p *WorkerPool) Run(ctx context.Context, t Task) (Result, error) {
	w, err := p.acquire(ctx, t.FnID)
	if err != nil {
		return Result{}, err
	}
	p.tasks.Add(1)
	var (
		mu       sync.Mutex
		grace    *time.Timer
		finished bool
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			grace = time.AfterFunc(CancelGrace, w.kill)
		}
	})
	res, err := w.run(t)
	if !stop() {
		mu.Lock()
		finished = true
		if grace != nil && !grace.Stop() {
			err = fmt.Errorf("%w (killed %s after its call ended)", ctx.Err(), CancelGrace)
		} else {
			err = ctx.Err()
		}
		mu.Unlock()
	}
	p.release(w)
	return res, err
}

// CancelGrace is how long a task may go on after its call ended (the client
// went away, another task failed, a deadline passed) before its worker is
// killed: a short task finishes and keeps its worker; a long one costs a
// restart, since Python code cannot be interrupted.
const CancelGrace = time.Second

// Close stops every worker: idle ones get SHUTDOWN, busy ones are killed
// when their callers return them.
func (p *WorkerPool) Close() {
	p.mu.Lock()
	p.cancel() // under mu: a lease that took a worker before has added to wg
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	idle := p.idleW
	p.idle, p.idleW = nil, nil
	p.mu.Unlock()
	for _, w := range idle {
		w.shutdown(2 * time.Second)
		p.alive.Add(-1)
	}
}
