// The concurrent shell of a run: workers, each with one DoExchange stream,
// taking requests from a Plan and keeping a Tally.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/metadata"

	qflight "github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/internal/record"
)

// Config of a run. Replay or Generate says what to send.
type Config struct {
	// Target is the endpoint: grpc+unix:///path, grpc://host:port or
	// grpc+tls://host:port.
	Target string
	// Function is the function to call (descriptor PATH [Function]).
	Function string
	// Token, when set, is sent as "authorization: Bearer <token>".
	Token string
	// Replay is a recording to send: the function's folder, or the
	// recording's root (then the folder of Function is used).
	Replay string
	// Generate is a generator spec (ParseSpec), for functions without
	// recordings.
	Generate string
	// Concurrency is the number of workers, each with one stream. Zero
	// means 1.
	Concurrency int
	// Rate > 0 runs an open loop at Rate batches per second across all
	// workers. Zero is a closed loop.
	Rate float64
	// Speed > 0 replays in an open loop at the recorded pacing, Speed times
	// as fast. Zero sends as fast as the loop allows. Replay only.
	Speed float64
	// Duration is how long requests are measured, after Warmup. Zero, with
	// Replay, sends the recording once.
	Duration time.Duration
	// Warmup is how long requests are sent before they are measured.
	Warmup time.Duration
	// RowsPerTask, when > 0, is sent as the quiver-rows-per-task header.
	RowsPerTask int64
	// Grace is how long requests in flight may take after the run ends (the
	// duration passed, or ctx ended) before they are cancelled and count as
	// failed. Zero means 10 s.
	Grace time.Duration
	// Progress, if set, gets a live status line once a second.
	Progress io.Writer
	// Mem allocates the input batches; nil means memory.DefaultAllocator.
	Mem memory.Allocator
}

func (c *Config) validate() error {
	switch {
	case c.Target == "":
		return errors.New("no target address")
	case c.Function == "":
		return errors.New("no function: give --function")
	case (c.Replay == "") == (c.Generate == ""):
		return errors.New("give exactly one of --replay DIR and --generate SPEC")
	case c.Concurrency < 0:
		return errors.New("--concurrency must be at least 1")
	case c.Speed < 0 || c.Rate < 0:
		return errors.New("--rate and --speed must be positive")
	case c.Speed > 0 && c.Replay == "":
		return errors.New("--speed keeps a recording's pacing: it needs --replay")
	case c.Speed > 0 && c.Rate > 0:
		return errors.New("--speed and --rate exclude each other: the pacing is either the recording's or fixed")
	case c.Duration < 0 || c.Warmup < 0 || c.RowsPerTask < 0 || c.Grace < 0:
		return errors.New("negative --duration, --warmup or --rows-per-task")
	case c.Duration == 0 && c.Replay == "":
		return errors.New("--duration is needed with --generate")
	case c.Duration == 0 && c.Warmup > 0:
		return errors.New("--warmup needs --duration: one pass over a recording measures every request")
	}
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.Mem == nil {
		c.Mem = memory.DefaultAllocator
	}
	return nil
}

// input is what a run sends.
type input struct {
	batches  []arrow.RecordBatch
	arrivals []time.Duration // replay only
	desc     string
	release  func()
}

func loadInput(cfg Config) (*input, error) {
	if cfg.Generate != "" {
		spec, err := ParseSpec(cfg.Generate)
		if err != nil {
			return nil, err
		}
		bs := spec.Generate(cfg.Mem)
		return &input{batches: bs, desc: "generate:" + spec.String(), release: func() {
			for _, b := range bs {
				b.Release()
			}
		}}, nil
	}
	rec, err := record.Load(cfg.Replay, cfg.Function, cfg.Mem)
	if err != nil {
		return nil, err
	}
	if len(rec.Batches) == 0 {
		rec.Release()
		return nil, fmt.Errorf("the recording in %s holds no batch (%d were deleted or cut short)", cfg.Replay, rec.Missing)
	}
	in := &input{desc: "replay:" + rec.Folder, release: rec.Release}
	for _, b := range rec.Batches {
		in.batches = append(in.batches, b.Rec)
		in.arrivals = append(in.arrivals, b.T)
	}
	return in, nil
}

// plan turns the config into the run's Plan.
func (c Config) plan(in *input) (Plan, error) {
	p := Plan{Batches: len(in.batches), Rate: c.Rate, Warmup: c.Warmup, Duration: c.Duration}
	if c.Duration == 0 {
		p.Limit = int64(len(in.batches)) // one pass
	}
	if c.Speed > 0 {
		var err error
		if p.Pacing, p.Period, err = ReplayPacing(in.arrivals, c.Speed); err != nil {
			return p, err
		}
	}
	return p, p.Check()
}

// Run runs a load test and reports what it measured. It returns an error
// only when the test could not run (bad config, unreadable input, bad
// address); failed requests are in the report. When ctx ends, no new
// request is sent, those in flight get Grace to finish, and the report
// covers what was done (Interrupted is set).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	in, err := loadInput(cfg)
	if err != nil {
		return nil, err
	}
	defer in.release()
	plan, err := cfg.plan(in)
	if err != nil {
		return nil, err
	}
	workers := make([]*worker, cfg.Concurrency)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.client.Close()
			}
		}
	}()
	for i := range workers {
		c, err := dial.Client(cfg.Target)
		if err != nil {
			return nil, err
		}
		workers[i] = &worker{cfg: &cfg, client: c, in: in, tally: NewTally()}
	}
	rep := &Report{Target: cfg.Target, Function: cfg.Function, Input: in.desc, Batches: len(in.batches),
		Mode: "closed", Concurrency: cfg.Concurrency, Rate: cfg.Rate, Speed: cfg.Speed, RowsPerTask: cfg.RowsPerTask,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds()}
	if plan.Open() {
		rep.Mode = "open"
	}

	r := &runner{plan: plan, start: time.Now()}
	rep.StartedAt = r.start.UTC().Format(time.RFC3339Nano)
	var runCtx context.Context
	runCtx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer r.cancel()
	var wg sync.WaitGroup
	for _, w := range workers {
		w.r, w.stop, w.ctx = r, ctx, runCtx
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop()
		}()
	}
	allDone := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		r.watch(ctx, cfg.Grace, allDone, cfg.Progress)
	}()
	wg.Wait()
	close(allDone)
	<-watchDone

	total := NewTally()
	for _, w := range workers {
		total.Merge(w.tally)
		rep.Streams += w.streams
	}
	measureStart := plan.Warmup
	fallback := plan.Duration
	if fallback == 0 {
		fallback = time.Since(r.start)
	}
	total.Fill(rep, measureStart, fallback)
	rep.Missed = plan.Unsent(r.next.Load())
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// runner is what the workers of a run share.
type runner struct {
	plan   Plan
	start  time.Time
	next   atomic.Int64 // the next request number
	cancel context.CancelFunc
	// progress counters of measured requests
	sent, ok, failed, rows atomic.Int64
}

// watch ends the run's streams Grace after the run's end (its duration, or
// ctx), unless the workers are done by then, and prints progress.
func (r *runner) watch(ctx context.Context, grace time.Duration, allDone <-chan struct{}, progress io.Writer) {
	var deadline <-chan time.Time
	if r.plan.Duration > 0 {
		t := time.NewTimer(time.Until(r.start.Add(r.plan.Warmup + r.plan.Duration + grace)))
		defer t.Stop()
		deadline = t.C
	}
	var tick <-chan time.Time
	if progress != nil {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		tick = tk.C
		defer fmt.Fprint(progress, "\r\033[K")
	}
	stop := ctx.Done()
	var last progressPoint
	for {
		select {
		case <-allDone:
			return
		case <-deadline:
			r.cancel()
			deadline = nil
		case <-stop:
			t := time.NewTimer(grace)
			defer t.Stop()
			deadline, stop = t.C, nil
		case <-tick:
			last = r.printProgress(progress, last)
		}
	}
}

type progressPoint struct {
	at       time.Duration
	ok, rows int64
}

func (r *runner) printProgress(w io.Writer, last progressPoint) progressPoint {
	now := progressPoint{at: time.Since(r.start), ok: r.ok.Load(), rows: r.rows.Load()}
	dt := (now.at - last.at).Seconds()
	phase := ""
	if now.at < r.plan.Warmup {
		phase = " (warming up)"
	}
	fmt.Fprintf(w, "\r\033[K%6.1fs%s  sent %d  ok %d  failed %d  %.0f batches/s  %s rows/s",
		now.at.Seconds(), phase, r.sent.Load(), now.ok, r.failed.Load(),
		float64(now.ok-last.ok)/dt, human(float64(now.rows-last.rows)/dt))
	return now
}

// worker sends requests over one stream at a time, reopening it when it
// fails, and tallies the measured ones.
type worker struct {
	cfg      *Config
	r        *runner
	client   flight.Client
	in       *input
	stop     context.Context // ends: send no more requests
	ctx      context.Context // ends: cancel the streams
	st       *stream
	tally    *Tally
	streams  int64
	failures int // in a row
}

func (w *worker) loop() {
	defer w.closeStream()
	open := w.r.plan.Open()
	var backoff time.Duration
	for w.stop.Err() == nil && w.ctx.Err() == nil {
		if backoff > 0 && !open && !w.pause(backoff) {
			return
		}
		k := w.r.next.Add(1) - 1
		req, ok := w.r.plan.Next(k, time.Since(w.r.start))
		if !ok {
			return
		}
		if open {
			if !w.pause(time.Until(w.r.start.Add(req.Due))) {
				return
			}
		} else {
			req.Due = time.Since(w.r.start)
		}
		rec := w.in.batches[req.Batch]
		bytes, err := w.do(rec)
		o := Outcome{Due: req.Due, Done: time.Since(w.r.start), Rows: rec.NumRows(), Bytes: bytes}
		backoff = 0
		if err != nil {
			o.Code, o.Msg = codeOf(err)
			backoff = nextBackoff(w.failures)
			w.failures++
		} else {
			w.failures = 0
		}
		if req.Measured {
			w.tally.Add(o)
			w.r.sent.Add(1)
			if err != nil {
				w.r.failed.Add(1)
			} else {
				w.r.ok.Add(1)
				w.r.rows.Add(o.Rows)
			}
		}
	}
}

// pause waits d, or less when the run stops; false means it stopped.
func (w *worker) pause(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.stop.Done():
		return false
	case <-w.ctx.Done():
		return false
	}
}

// nextBackoff is how long a closed-loop worker waits after its n-th
// failure in a row before the next request: 0 after the first (a stream
// that failed once is reopened at once), then 1 ms doubling up to 100 ms,
// so that a target that refuses everything is not flooded.
func nextBackoff(n int) time.Duration {
	if n == 0 {
		return 0
	}
	d := time.Millisecond << min(n-1, 7)
	return min(d, 100*time.Millisecond)
}

// do sends one batch and reads its result: one lockstep request. It
// returns the bytes sent. A failed stream is abandoned; the next request
// opens another.
func (w *worker) do(rec arrow.RecordBatch) (int64, error) {
	if w.st != nil && !w.st.schema.Equal(rec.Schema()) {
		w.closeStream()
	}
	if w.st == nil {
		st, err := w.open(rec.Schema())
		if err != nil {
			return 0, err
		}
		w.st = st
	}
	n, err := w.st.roundTrip(rec)
	if err != nil {
		w.st.abandon()
		w.st = nil
	}
	return n, err
}

func (w *worker) open(schema *arrow.Schema) (*stream, error) {
	ctx, cancel := context.WithCancel(dial.WithToken(w.ctx, w.cfg.Token))
	if w.cfg.RowsPerTask > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, qflight.HeaderRowsPerTask, strconv.FormatInt(w.cfg.RowsPerTask, 10))
	}
	w.streams++
	ex, err := w.client.DoExchange(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return newStream(ex, cancel, w.cfg.Function, schema, w.cfg.Mem), nil
}

// closeStream ends the worker's stream cleanly, if it has one.
func (w *worker) closeStream() {
	if w.st != nil {
		w.st.finish()
		w.st = nil
	}
}
