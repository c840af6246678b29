// One call: read input batches, run their tasks, emit results in order.
package scheduler

import (
	"context"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/quiver-udf/quiver/internal/arrowio"
	"github.com/quiver-udf/quiver/udf"
)

// Source yields a call's input batches. Next returns a batch owned by its
// caller (Run releases it), or io.EOF after the last one. Run calls Close
// exactly once: from the goroutine that called Next, when it stops reading
// (that may be after Run has returned, since a read blocked on a stream
// ends only with the stream), or before it returns when it refuses the call.
type Source interface {
	Next() (arrow.RecordBatch, error)
	Close()
}

// Emit writes one output batch and what it cost. The batch is released
// after Emit returns.
type Emit func(arrow.RecordBatch, BatchInfo) error

// BatchInfo says what one output batch cost.
type BatchInfo struct {
	// Nulled is the number of rows made null by OnErrorNull.
	Nulled int64 `json:"nulled"`
	// WorkMs is the time its tasks spent evaluating, summed over tasks.
	WorkMs float64 `json:"work_ms"`
	// SoloMs is what the batch would have cost as one task: WorkMs when it
	// ran as one, else the function's fitted cost of its rows in one call
	// (a split batch pays the fixed part once per task, so WorkMs overstates
	// what one call of its rows costs: a caller weighing running it itself
	// compares its wall time with this).
	SoloMs float64 `json:"solo_ms"`
}

// Run drives one call of b on the input that next yields, passing exactly
// one output batch per input batch to emit, in input order. It returns when
// the input has ended and every output is written, or at the first error;
// either way every task it started has finished and every batch it holds is
// released, except what src still holds until its Close.
func (s *Scheduler) Run(ctx context.Context, b *Bound, src Source, emit Emit) error {
	if err := s.enter(); err != nil {
		src.Close()
		return err
	}
	defer s.leave()
	s.stats.callsTotal.Add(1)
	if b.Opts.Timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeout(ctx, b.Opts.Timeout)
		defer cancelT()
	}
	if len(b.Opts.TaskContext) > 0 {
		ctx = udf.WithTaskContext(ctx, b.Opts.TaskContext)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &call{s: s, b: b, ctx: ctx, core: NewCore(s.cfg.Window), batches: map[int]*batch{}, name: b.Func.Name(), id: CallID(ctx)}
	if cf, ok := b.Func.(udf.Costed); ok {
		c.costed, c.cost = cf, s.costOf(cf.ID())
		if s.cfg.Workers > 0 {
			c.lane = LaneWorkers
		}
	}
	c.inbox.signal = make(chan struct{}, 1)
	in := make(chan input)
	go readInput(ctx, src, in)
	err := c.loop(in, emit)
	cancel()
	c.cleanup()
	if err != nil {
		s.stats.callsFailed.Add(1)
	}
	return err
}

type input struct {
	rec arrow.RecordBatch
	err error
}

// readInput forwards batches from src until it fails, io.EOF included.
func readInput(ctx context.Context, src Source, in chan<- input) {
	defer src.Close()
	for {
		rec, err := src.Next()
		select {
		case in <- input{rec, err}:
		case <-ctx.Done():
			if rec != nil {
				rec.Release()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// call is the state of one Run, owned by the goroutine running Run.
type call struct {
	s       *Scheduler
	b       *Bound
	ctx     context.Context
	core    *Core
	batches map[int]*batch
	name    string     // the function's name
	id      string     // the call's id in logs (WithCallID), "" when none
	lane    Lane       // where its tasks queue
	costed  udf.Costed // the function, when it measures its work; else nil
	cost    *costCell  // its cost, when costed

	outstanding int        // tasks submitted whose results are not yet taken
	held        []heldTask // tasks placed on a busy peer, waiting to be sent (spill.go)
	inbox       inbox
}

// batch is one admitted input batch and its task results so far.
type batch struct {
	rec     arrow.RecordBatch
	ranges  []Range
	results []taskResult
}

func (c *call) loop(in <-chan input, emit Emit) error {
	eof := false
	for {
		if eof && c.core.InFlight() == 0 {
			return nil
		}
		var inC <-chan input
		if !eof && c.core.CanAdmit() {
			inC = in
		}
		var wakeC <-chan struct{}
		if len(c.held) > 0 {
			wakeC = c.s.wake.wait()
		}
		select {
		case m := <-inC:
			if m.err == io.EOF {
				eof = true
				break
			}
			if m.err != nil {
				return m.err
			}
			if err := c.admit(m.rec); err != nil {
				return err
			}
		case <-c.inbox.signal:
			if err := c.collect(); err != nil {
				return err
			}
			if err := c.placeHeld(); err != nil {
				return err
			}
		case <-wakeC:
			if err := c.placeHeld(); err != nil {
				return err
			}
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		for _, seq := range c.core.Ready() {
			if err := c.flush(seq, emit); err != nil {
				return err
			}
		}
	}
}

// collect files the results that executors delivered. It takes all of
// them even after a failure, so that none is left unaccounted for.
func (c *call) collect() error {
	var first error
	for _, r := range c.inbox.take() {
		c.outstanding--
		c.s.stats.tasksActive.Add(-1)
		if r.err == nil {
			c.s.stats.tasksDone.Add(1)
		}
		if r.err != nil || first != nil {
			if first == nil {
				first = r.err
			}
			r.release()
			continue
		}
		c.batches[r.seq].results[r.idx] = r
		if err := c.core.Complete(r.seq, r.idx); err != nil {
			first = err
		}
	}
	return first
}

// admit cuts rec into tasks and sends each where placement says: its
// lane of the pool here, or a peer.
func (c *call) admit(rec arrow.RecordBatch) error {
	if c.b.decode {
		var err error
		if rec, err = decodeDictionaries(c.s.cfg.Mem, rec); err != nil {
			return err
		}
	}
	rows := rec.NumRows()
	c.s.stats.rowsIn.Add(rows)
	bytes := arrowio.RecordBytes(rec)
	c.s.stats.bytesIn.Add(bytes)
	if c.b.Table {
		if err := checkTableBatch(rows); err != nil {
			rec.Release()
			return err
		}
	}
	if c.b.Opts.Spilled {
		if err := c.refuseSpill(); err != nil {
			rec.Release()
			return err
		}
	}
	ranges := c.split(rows)
	seq := c.core.Admit(len(ranges))
	bt := &batch{rec: rec, ranges: ranges, results: make([]taskResult, len(ranges))}
	c.batches[seq] = bt
	p := &taskPlan{bt: bt, seq: seq, spilled: c.b.Opts.Spilled, bytes: bytes}
	if c.costed != nil {
		p.perRow = c.cost.estimate().AvgPerRowNs(rows)
	}
	g := c.groupSize(p)
	for idx := 0; idx < len(ranges); {
		if end := min(idx+g, len(ranges)); end-idx > 1 {
			if err := c.placeGroup(p, idx, end); err != nil {
				return err
			}
			idx = end
			continue
		}
		if err := c.place(p, idx); err != nil {
			return err
		}
		idx++
	}
	return nil
}

// refuseSpill refuses a task spilled here when its lane's queue already
// holds Config.SpillBacklog tasks: it is never forwarded again.
func (c *call) refuseSpill() error {
	c.s.stats.spilledIn.Add(1)
	l := c.s.pool.lanes[c.lane]
	backlog := c.s.cfg.SpillBacklog
	if backlog == 0 {
		backlog = 2 * max(l.slots, 1)
	}
	if len(l.jobs) >= backlog {
		c.s.stats.spillsRefused.Add(1)
		return ErrSpillBusy
	}
	return nil
}

// split cuts a batch into tasks of the caller's size, else sized from
// the function's measured cost when it measures one (TaskRowsForCost; in
// two sizes while its fixed part is not separated yet; smaller over the
// workers idle now, TaskRowsForIdle; ConcurrentTaskRows
// for one that runs several rows at once in a worker), else of the native
// default, spread over as many tasks as the node runs at once.
func (c *call) split(rows int64) []Range {
	if c.b.Opts.RowsPerTask > 0 {
		return Split(rows, c.b.Opts.RowsPerTask)
	}
	if w, ok := c.b.Func.(udf.Whole); ok && w.Whole() {
		return Split(rows, rows)
	}
	if c.costed == nil {
		return Split(rows, TaskRows(rows, 0, c.s.Executors()))
	}
	cost := c.cost.estimate()
	if cf, ok := c.costed.(udf.Concurrent); ok && cf.Concurrency() > 1 {
		return Split(rows, ConcurrentTaskRows(rows, cost.AvgPerRowNs(rows), c.costed.Parallelism(), cf.Concurrency()))
	}
	if c.b.Opts.Independent {
		return Split(rows, IndependentTaskRows(rows, cost.AvgPerRowNs(rows), c.costed.Parallelism()))
	}
	per := TaskRowsForCost(rows, cost, c.costed.Parallelism())
	if cost.Tasks > 0 && !cost.Separated {
		return SplitProbing(rows, per)
	}
	sn := c.s.pool.snapshot(c.lane)
	return Split(rows, TaskRowsForIdle(rows, cost, c.costed.Parallelism(), sn.Slots-sn.Running-sn.Queued, per))
}

// flush assembles batch seq's output, emits it and frees the batch.
func (c *call) flush(seq int, emit Emit) error {
	bt := c.batches[seq]
	delete(c.batches, seq)
	defer bt.free()
	out, err := c.s.assemble(c.b, bt)
	if err != nil {
		return err
	}
	defer out.Release()
	c.s.stats.batches.Add(1)
	c.s.stats.rows.Add(out.NumRows())
	c.s.stats.bytesOut.Add(arrowio.RecordBytes(out))
	var info BatchInfo
	for _, r := range bt.results {
		info.WorkMs += r.work.Seconds() * 1e3
		for _, e := range r.errs {
			if e != "" {
				info.Nulled++
			}
		}
	}
	info.SoloMs = info.WorkMs
	if c.cost != nil {
		info.SoloMs = SoloMs(len(bt.results), bt.rec.NumRows(), c.cost.estimate(), info.WorkMs)
	}
	return emit(out, info)
}

// cleanup waits for the call's outstanding tasks and releases everything
// the call still holds. The call's context is cancelled by then, so queued
// tasks return at once.
func (c *call) cleanup() {
	c.s.stats.held.Add(-int64(len(c.held)))
	c.held = nil
	for c.outstanding > 0 {
		<-c.inbox.signal
		for _, r := range c.inbox.take() {
			c.outstanding--
			c.s.stats.tasksActive.Add(-1)
			r.release()
		}
	}
	for seq, bt := range c.batches {
		bt.free()
		delete(c.batches, seq)
	}
}

func (bt *batch) free() {
	for i := range bt.results {
		bt.results[i].release()
	}
	bt.rec.Release()
}

// inbox collects task results from executors without ever blocking them.
type inbox struct {
	mu     sync.Mutex
	items  []taskResult
	signal chan struct{}
}

func (q *inbox) put(r taskResult) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *inbox) take() []taskResult {
	q.mu.Lock()
	items := q.items
	q.items = nil
	q.mu.Unlock()
	return items
}
