// The Recorder and its per-call handle: what the node's hot path touches.
package record

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/internal/arrowio"
)

// DefaultMaxBytes is the default bound of a recording on disk: 1 GiB.
const DefaultMaxBytes = 1 << 30

// Config of a Recorder.
type Config struct {
	// Dir is the recording directory; it is created (0700) if missing. A
	// recording already there is continued.
	Dir string
	// MaxBytes bounds the files under Dir, in bytes; past it the oldest
	// calls are deleted. Zero means DefaultMaxBytes.
	MaxBytes int64
	// QueueBatches bounds the batches waiting to be written. Zero means 1024.
	QueueBatches int
	// QueueBytes bounds the Arrow buffers of the batches waiting to be
	// written, in bytes; a single batch is taken whatever its size when the
	// queue is empty. Zero means 512 MiB.
	QueueBytes int64
	// LogEvery: one warning per LogEvery dropped batches. Zero means 1000.
	LogEvery int64
}

func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("record: no directory")
	}
	if c.MaxBytes < 0 || c.QueueBatches < 0 || c.QueueBytes < 0 || c.LogEvery < 0 {
		return errors.New("record: negative limit in Config")
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.QueueBatches == 0 {
		c.QueueBatches = 1024
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = 512 << 20
	}
	if c.LogEvery == 0 {
		c.LogEvery = 1000
	}
	return nil
}

// Recorder writes the input of calls to a recording directory. Its methods
// are safe for concurrent use; see the package doc for the life cycle.
type Recorder struct {
	cfg   Config
	log   *zap.Logger
	start time.Time
	clock time.Duration // t_ns of start: where a continued recording's clock stood
	ids   atomic.Int64  // last call id handed out
	q     queue
	w     *writer // owned by the writer goroutine
	done  chan struct{}
	stats stats

	closeOnce sync.Once
	// beforeWrite, if set, runs in the writer goroutine before every batch
	// (tests hold the writer with it).
	beforeWrite func()
}

// Stats counts what a Recorder did.
type Stats struct {
	// Calls is the number of calls begun; Batches the batches written.
	Calls, Batches int64
	// Dropped is the number of batches offered but not recorded because
	// the queue was full; OverBound those left out because the recording
	// was at MaxBytes with only calls in progress; Skipped those of a call
	// whose file failed.
	Dropped, OverBound, Skipped int64
	// Evicted is the number of finished calls deleted to keep under
	// MaxBytes.
	Evicted int64
	// WriteErrors counts failed file operations.
	WriteErrors int64
	// DiskBytes is the size of the recording's files as the writer last
	// accounted it.
	DiskBytes int64
}

type stats struct {
	calls, batches, dropped, overBound, skipped, evicted, writeErrors, diskBytes atomic.Int64
}

// New opens (or continues) the recording in cfg.Dir and starts the writer
// goroutine. Close stops it.
func New(cfg Config, log *zap.Logger) (*Recorder, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	r := &Recorder{cfg: cfg, log: log, done: make(chan struct{})}
	r.q.signal = make(chan struct{}, 1)
	w, last, err := openWriter(cfg.Dir, cfg.MaxBytes, cfg.LogEvery, log, &r.stats)
	if err != nil {
		return nil, err
	}
	r.w = w
	r.ids.Store(last.call)
	r.clock = last.t
	if last.call > 0 {
		r.clock += time.Millisecond // the restart: a gap, never a reordering
	}
	r.start = time.Now()
	go r.loop()
	return r, nil
}

// QueueBytes is the most Arrow memory the recorder holds at once, beyond
// one batch: what a caller adds to the memory it allows a call, so that
// recording never makes a call run out.
func (r *Recorder) QueueBytes() int64 {
	if r == nil {
		return 0
	}
	return r.cfg.QueueBytes
}

// MaxBytes is the bound of the recording on disk.
func (r *Recorder) MaxBytes() int64 {
	if r == nil {
		return 0
	}
	return r.cfg.MaxBytes
}

// Stats returns the counters so far.
func (r *Recorder) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	return Stats{
		Calls: r.stats.calls.Load(), Batches: r.stats.batches.Load(),
		Dropped: r.stats.dropped.Load(), OverBound: r.stats.overBound.Load(), Skipped: r.stats.skipped.Load(),
		Evicted: r.stats.evicted.Load(), WriteErrors: r.stats.writeErrors.Load(),
		DiskBytes: r.stats.diskBytes.Load(),
	}
}

// Close writes what is queued, ends every call's stream and waits for the
// writer goroutine. Calls offered after Close are not recorded.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() { r.q.close() })
	<-r.done
	st := r.Stats()
	r.log.Info("recording closed", zap.String("dir", r.cfg.Dir), zap.Int64("calls", st.Calls),
		zap.Int64("batches", st.Batches), zap.Int64("dropped", st.Dropped), zap.Int64("over_bound", st.OverBound),
		zap.Int64("evicted_calls", st.Evicted), zap.Int64("disk_bytes", st.DiskBytes))
	if st.WriteErrors > 0 {
		return fmt.Errorf("record: %d file operations failed in %s; see the log", st.WriteErrors, r.cfg.Dir)
	}
	return nil
}

// Begin starts recording one call of function with input schema. The
// call's stream file is created with its first batch.
func (r *Recorder) Begin(function string, schema *arrow.Schema) *Call {
	if r == nil {
		return nil
	}
	r.stats.calls.Add(1)
	return &Call{r: r, id: r.ids.Add(1), function: function, schema: schema}
}

// Call records one call. Offer and Close must be called from one goroutine
// (the one reading the call's input).
type Call struct {
	r        *Recorder
	id       int64
	function string
	schema   *arrow.Schema
	seq      int64
	closed   bool
}

// ID is the call's id in the recording.
func (c *Call) ID() int64 {
	if c == nil {
		return 0
	}
	return c.id
}

// Offer records rec, a batch the call received, unless the queue is full.
// It never blocks. The recorder retains rec while it holds it; the caller
// keeps its own reference.
func (c *Call) Offer(rec arrow.RecordBatch) {
	if c == nil || c.closed {
		return
	}
	r := c.r
	it := item{call: c, seq: c.seq, t: r.clock + time.Since(r.start), size: arrowio.RecordBytes(rec), rec: rec}
	c.seq++
	switch r.q.offer(it, r.cfg.QueueBatches, r.cfg.QueueBytes) {
	case accepted:
	case full:
		if n := r.stats.dropped.Add(1); n%r.cfg.LogEvery == 1 || r.cfg.LogEvery == 1 {
			r.log.Warn("recording queue full: batches dropped from the recording (the calls are unaffected)",
				zap.Int64("dropped_total", n), zap.String("function", c.function), zap.Int64("call", c.id))
		}
	case closed:
	}
}

// Close ends the call's recording: its stream file is completed.
func (c *Call) Close() {
	if c == nil || c.closed {
		return
	}
	c.closed = true
	c.r.q.push(item{call: c, end: true})
}

// item is one entry of the queue: a batch of a call, or the end of a call.
type item struct {
	call *Call
	rec  arrow.RecordBatch // retained by the queue; nil for end
	seq  int64
	t    time.Duration
	size int64
	end  bool
}

// queue is the bounded queue between the calls and the writer goroutine.
// End markers are not bounded: there is one per call, and dropping one
// would leave a file open.
type queue struct {
	mu      sync.Mutex
	items   []item
	batches int
	bytes   int64
	closed  bool
	signal  chan struct{} // capacity 1: something was queued, or closed
}

type verdict int

const (
	accepted verdict = iota
	full
	closed
)

// offer queues a batch, retaining it, if the bounds allow.
func (q *queue) offer(it item, maxBatches int, maxBytes int64) verdict {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return closed
	case q.batches > 0 && (q.batches >= maxBatches || q.bytes+it.size > maxBytes):
		q.mu.Unlock()
		return full
	}
	it.rec.Retain()
	q.items = append(q.items, it)
	q.batches++
	q.bytes += it.size
	q.mu.Unlock()
	q.wake()
	return accepted
}

// push queues an end marker.
func (q *queue) push(it item) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.wake()
}

func (q *queue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

// wait blocks until there are items or the queue is closed, and takes
// them all. It reports closed once the queue is closed and empty.
func (q *queue) wait() (items []item, done bool) {
	for {
		q.mu.Lock()
		items, closed := q.items, q.closed
		q.items, q.batches, q.bytes = nil, 0, 0
		q.mu.Unlock()
		if len(items) > 0 || closed {
			return items, closed && len(items) == 0
		}
		<-q.signal
	}
}

// loop is the writer goroutine.
func (r *Recorder) loop() {
	defer close(r.done)
	for {
		items, done := r.q.wait()
		if done {
			r.w.closeAll()
			return
		}
		for _, it := range items {
			if it.end {
				r.w.end(it.call.id)
				continue
			}
			if r.beforeWrite != nil {
				r.beforeWrite()
			}
			r.w.write(it)
			it.rec.Release()
		}
		r.w.flush()
	}
}
