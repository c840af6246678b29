// A worker of a run: one stream at a time, requests from the Plan, a Tally
// and, with --verify, every answer checked.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/metadata"

	qflight "github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/dial"
)

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
	checks   checks
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
		bytes, err := w.do(rec, req.Batch)
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
func (w *worker) do(rec arrow.RecordBatch, batch int) (int64, error) {
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
	n, out, err := w.st.roundTrip(rec)
	w.verify(rec, batch, out, err)
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
		if extra := w.st.finish(); extra > 0 && w.in.expect != nil {
			w.checks.duplicated += extra
			w.checks.note(fmt.Sprintf("%d rows came after the last answer", extra))
		}
		w.st = nil
	}
}

// checks counts what --verify found in a worker's answers.
type checks struct {
	verified, wrong, missing, duplicated int64
	sample                               string
}

func (c *checks) note(s string) {
	if c.sample == "" {
		c.sample = s
	}
}

// verify checks the answer out to input batch rec (nil when none came):
// its rows by position, the rows it lacks as missing and those past the
// input's as duplicated. A request that failed with a status has no
// answer to check.
func (w *worker) verify(rec arrow.RecordBatch, batch int, out arrow.RecordBatch, err error) {
	if w.in.expect == nil {
		return
	}
	n := rec.NumRows()
	if out == nil {
		if errors.Is(err, errNoResult) {
			w.checks.missing += n
			w.checks.note(fmt.Sprintf("batch %d: %v", batch, err))
		}
		return
	}
	got := out.NumRows()
	m := min(n, got)
	w.checks.missing += n - m
	w.checks.duplicated += got - m
	if got != n {
		w.checks.note(fmt.Sprintf("batch %d: %d rows for an input of %d", batch, got, n))
	}
	if m == 0 {
		return
	}
	if out.NumCols() < 1 {
		w.checks.wrong += m
		w.checks.note(fmt.Sprintf("batch %d: an answer without columns", batch))
		return
	}
	wrong, sample := w.in.expect[batch].check(out.Column(0), int(m))
	w.checks.verified += m
	w.checks.wrong += wrong
	if sample != "" {
		w.checks.note(fmt.Sprintf("batch %d: %s", batch, sample))
	}
}
