// The pool of Python worker processes: prestarted, replaced when they die,
// stopped with the node.
package udf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
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
	cfg  PoolConfig
	log  *zap.Logger
	idle chan *pyWorker

	ctx    context.Context // cancelled by Close: stops starts in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup // replacement goroutines

	nextID   atomic.Int64
	alive    atomic.Int64
	starting atomic.Int64
	restarts atomic.Int64
	tasks    atomic.Int64
	startErr atomic.Pointer[error] // the last failed start, cleared by a good one
}

// PoolStats is a snapshot of the pool.
type PoolStats struct {
	Workers  int64 `json:"workers"`
	Starting int64 `json:"workers_starting"`
	Idle     int   `json:"workers_idle"`
	Restarts int64 `json:"worker_restarts"`
	Tasks    int64 `json:"python_tasks_total"`
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
	p := &WorkerPool{cfg: cfg, log: log, idle: make(chan *pyWorker, cfg.Workers), ctx: ctx, cancel: cancel}
	for i := 0; i < cfg.Workers; i++ {
		p.spawn(0)
	}
	return p, nil
}

// Size is the configured number of workers.
func (p *WorkerPool) Size() int { return p.cfg.Workers }

// Stats returns a snapshot.
func (p *WorkerPool) Stats() PoolStats {
	return PoolStats{Workers: p.alive.Load(), Starting: p.starting.Load(), Idle: len(p.idle),
		Restarts: p.restarts.Load(), Tasks: p.tasks.Load()}
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
				p.idle <- w
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

// acquire takes an idle worker, waiting while all are busy or starting.
// When no worker is alive and starting them fails, it gives up with
// ErrNoWorkers rather than wait for a start that may never succeed.
func (p *WorkerPool) acquire(ctx context.Context) (*pyWorker, error) {
	select {
	case w := <-p.idle:
		if w.alive() {
			return w, nil
		}
		p.replace(w)
	default:
	}
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	for {
		select {
		case <-check.C:
			if errp := p.startErr.Load(); errp != nil && p.alive.Load() == 0 {
				return nil, fmt.Errorf("%w: %v", ErrNoWorkers, *errp)
			}
		case w := <-p.idle:
			if w.alive() {
				return w, nil
			}
			p.replace(w)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.ctx.Done():
			return nil, fmt.Errorf("%w: the pool is closed", ErrNoWorkers)
		}
	}
}

// release returns a healthy worker to the pool, or replaces a dead one.
func (p *WorkerPool) release(w *pyWorker) {
	if w.alive() && p.ctx.Err() == nil {
		p.idle <- w
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
}

// Result is a worker's answer to a Task.
type Result struct {
	IPC    []byte  // Arrow IPC stream: one column, the result
	Rows   int64   // rows the worker says it returned
	WorkMs float64 // time spent in the user's function
}

// Run executes t on an idle worker. A worker that dies fails the task with
// ErrWorkerDied; a function that raises fails it with a *PyError. When ctx
// ends while the task runs, the worker is killed (a Python function cannot
// be interrupted) and replaced.
func (p *WorkerPool) Run(ctx context.Context, t Task) (Result, error) {
	w, err := p.acquire(ctx)
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
	p.cancel()
	p.wg.Wait()
	for {
		select {
		case w := <-p.idle:
			w.shutdown(2 * time.Second)
			p.alive.Add(-1)
		default:
			return
		}
	}
}

// run sends LOAD if needed and TASK, and reads the answer.
func (w *pyWorker) run(t Task) (Result, error) {
	hdr := taskHeader{Fn: t.FnID}
	body, err := w.placeArgs(t, &hdr)
	if err != nil {
		return Result{}, err // the arguments could not be encoded; nothing was sent
	}
	used := 0 // the arena bytes this task used
	if hdr.Arena != nil {
		used = int(hdr.Arena[1])
	}
	if !w.loaded[t.FnID] {
		if err := writeFrame(w.conn, frameLoad, map[string]string{"fn": t.FnID, "name": t.Name}, t.Blob); err != nil {
			return Result{}, w.died(err)
		}
		w.loaded[t.FnID] = true
	}
	w.seq++
	hdr.Task = w.seq
	if err := writeFrame(w.conn, frameTask, hdr, body); err != nil {
		return Result{}, w.died(err)
	}
	// Only a whole RESULT frame makes the arena's bytes a result: a worker
	// that dies mid-task is end-of-file here, whatever it left in the arena.
	f, err := readFrame(w.r)
	if err != nil {
		return Result{}, w.died(err)
	}
	switch f.kind {
	case frameResult:
		var h struct {
			Task   uint64   `json:"task"`
			Rows   int64    `json:"rows"`
			Ms     float64  `json:"ms"`
			Arena  []uint64 `json:"arena"`
			Pinned bool     `json:"pinned"`
		}
		if err := f.decodeHeader(&h); err != nil {
			return Result{}, w.died(err)
		}
		if h.Task != w.seq {
			return Result{}, w.died(fmt.Errorf("%w: RESULT for task %d, want %d", ErrProtocol, h.Task, w.seq))
		}
		data := f.body
		if h.Arena != nil {
			if len(f.body) > 0 {
				return Result{}, w.died(fmt.Errorf("%w: RESULT with both an arena range and a body", ErrProtocol))
			}
			if data, err = w.arena.span(h.Arena); err != nil {
				return Result{}, w.died(err)
			}
			used = max(used, int(h.Arena[0]+h.Arena[1]))
		}
		res := Result{Rows: h.Rows, WorkMs: h.Ms}
		switch {
		case t.Decode != nil:
			err = t.Decode(data) // copies out of the arena before the worker's next task
		case h.Arena != nil:
			res.IPC = bytes.Clone(data)
		default:
			res.IPC = data
		}
		w.afterTask(used, h.Pinned)
		return res, err
	case frameError:
		var h struct {
			Task   uint64 `json:"task"`
			Pinned bool   `json:"pinned"`
			PyError
		}
		if err := json.Unmarshal(f.header, &h); err != nil {
			return Result{}, w.died(fmt.Errorf("%w: bad ERROR header: %v", ErrProtocol, err))
		}
		if h.Task != w.seq {
			return Result{}, w.died(fmt.Errorf("%w: ERROR for task %d, want %d", ErrProtocol, h.Task, w.seq))
		}
		w.afterTask(used, h.Pinned)
		pe := h.PyError
		return Result{}, &pe
	}
	return Result{}, w.died(fmt.Errorf("%w: answer of kind %d to a task", ErrProtocol, f.kind))
}

// placeArgs writes the task's arguments into the arena, growing it up to
// arenaMax, and names them in hdr; arguments that cannot go there (no arena,
// past arenaMax, or the worker still holds earlier arguments it read from
// the arena) are returned as the frame body.
func (w *pyWorker) placeArgs(t Task, hdr *taskHeader) ([]byte, error) {
	a := w.arena
	if a != nil {
		hdr.ArenaSize = a.size() // the worker may put its result there either way
	}
	if a == nil || w.pinned {
		if t.Encode == nil {
			return t.Args, nil
		}
		var buf bytes.Buffer
		err := t.Encode(&buf)
		return buf.Bytes(), err
	}
	args := t.Args
	if t.Encode != nil {
		aw := arenaWriter{mem: a.mem}
		if err := t.Encode(&aw); err != nil {
			return nil, err
		}
		if aw.spill == nil {
			a.fit(aw.n) // room for a result as large, for the worker
			hdr.Arena, hdr.ArenaSize = []uint64{0, uint64(aw.n)}, a.size()
			return nil, nil
		}
		args = aw.spill.Bytes() // did not fit: grow, then copy them in once
	}
	if !a.fit(len(args)) {
		return args, nil
	}
	copy(a.mem, args)
	hdr.Arena, hdr.ArenaSize = []uint64{0, uint64(len(args))}, a.size()
	return nil, nil
}

// afterTask records what the task left in the arena: whether the worker
// still holds arguments it read from there (then the arena is left alone
// until it says otherwise), and the pages it touched, which are trimmed
// when this task needed fewer than an earlier one.
func (w *pyWorker) afterTask(used int, pinned bool) {
	w.pinned = pinned
	if w.arena == nil {
		return
	}
	w.arena.used(used)
	if !pinned {
		w.arena.trim(used)
	}
}

type taskHeader struct {
	Task      uint64   `json:"task"`
	Fn        string   `json:"fn"`
	Arena     []uint64 `json:"arena,omitempty"`      // [offset, length] of the arguments in the arena
	ArenaSize int      `json:"arena_size,omitempty"` // the arena's size now: the worker remaps when it grew
}

// PyError is an exception raised by a Python function in a worker.
type PyError struct {
	Func      string `json:"fn"`
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

func (e *PyError) Error() string {
	return fmt.Sprintf("%s raised %s: %s\nRemote traceback:\n%s", e.Func, e.Type, e.Message, e.Traceback)
}
