// The concurrent shell of a run: workers, each with one DoExchange stream,
// taking requests from a Plan and keeping a Tally.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

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
	// Verify checks every answer against a reference computed from the
	// input (built-in functions only; see VerifyAs) and counts wrong,
	// missing and duplicated rows.
	Verify bool
	// VerifyAs, with Verify, checks the answers against the reference of
	// this function instead of Function's ("" means Function).
	VerifyAs string
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
	case c.VerifyAs != "" && !c.Verify:
		return errors.New("--verify-as needs --verify")
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
	expect   []expectation   // by batch, with --verify and a reference
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

// prepareVerify computes the expected answer of every batch when cfg asks
// to verify and the function has a reference, and returns what the report
// says about verification.
func (in *input) prepareVerify(cfg Config) (string, error) {
	if !cfg.Verify {
		return "", nil
	}
	name := cfg.Function
	if cfg.VerifyAs != "" {
		name = cfg.VerifyAs
	}
	build, ok := referenceFor(name)
	if !ok {
		return fmt.Sprintf("not verified: %s has no reference here (registered Python functions are not verifiable)", name), nil
	}
	for k, b := range in.batches {
		e, err := build(b)
		if err != nil {
			return "", fmt.Errorf("--verify: batch %d is no input of %s: %w", k, name, err)
		}
		in.expect = append(in.expect, e)
	}
	return "against the reference of " + name, nil
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
	verifyNote, err := in.prepareVerify(cfg)
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
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(), Verify: verifyNote}
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
		rep.addChecks(w.checks)
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
