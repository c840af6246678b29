// The report of a run and the tally it is computed from: plain values, no
// goroutines (each worker keeps its own Tally; they are merged at the end).
package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is what a run measured. Its JSON form is what --json writes;
// docs/loadtest.md documents every field.
type Report struct {
	// Target is the endpoint's address; Function the function called.
	Target   string `json:"target"`
	Function string `json:"function"`
	// Input says what was sent: "generate:SPEC" or "replay:FOLDER".
	Input string `json:"input"`
	// Batches is the number of distinct input batches, sent in turn.
	Batches int `json:"batches"`
	// Mode is "closed" (each worker sends as soon as its last request is
	// answered) or "open" (requests are due at fixed times).
	Mode string `json:"mode"`
	// Concurrency is the number of workers, each with one stream.
	Concurrency int `json:"concurrency"`
	// Rate is the requested rate in batches per second (--rate); 0 unless
	// open loop at a fixed rate.
	Rate float64 `json:"rate"`
	// Speed is the replay pacing factor (--speed); 0 unless pacing.
	Speed float64 `json:"speed"`
	// RowsPerTask is the quiver-rows-per-task header sent; 0 for none.
	RowsPerTask int64 `json:"rows_per_task"`
	// StartedAt is when the run started, RFC 3339 with nanoseconds.
	StartedAt string `json:"started_at"`
	// WarmupS is the warmup, seconds: requests due in it are not measured.
	WarmupS float64 `json:"warmup_s"`
	// DurationS is the requested measured duration, seconds; 0 for one pass
	// over a recording.
	DurationS float64 `json:"duration_s"`
	// ElapsedS is the measured time, seconds: from the end of the warmup
	// to the last answer. The rates divide by it.
	ElapsedS float64 `json:"elapsed_s"`
	// Sent is the number of measured requests (batches written); every one
	// either Succeeded or Failed.
	Sent      int64 `json:"sent"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	// ErrorRate is Failed / Sent (0 when nothing was sent).
	ErrorRate float64 `json:"error_rate"`
	// Errors counts failed requests by gRPC code name (NotFound,
	// Unavailable, ...); "BadResult" is a result with the wrong number of
	// rows.
	Errors map[string]int64 `json:"errors"`
	// ErrorSamples is the first message seen for each key of Errors.
	ErrorSamples map[string]string `json:"error_samples"`
	// Rows and Bytes are the input rows and bytes of the requests that
	// succeeded; bytes are the IPC messages sent (header and body), the
	// stream's schema not included.
	Rows  int64 `json:"rows"`
	Bytes int64 `json:"bytes"`
	// RowsPerS, BatchesPerS and MBPerS are the rates of succeeded requests
	// over ElapsedS (MB = 10^6 bytes of input).
	RowsPerS    float64 `json:"rows_per_s"`
	BatchesPerS float64 `json:"batches_per_s"`
	MBPerS      float64 `json:"mb_per_s"`
	// LatencyUS is the latency of succeeded requests in microseconds: from
	// sending the batch to reading its result (closed loop), or from the
	// time the request was due (open loop).
	LatencyUS Latency `json:"latency_us"`
	// Streams is the number of DoExchange streams opened, reopenings after
	// a failure included.
	Streams int64 `json:"streams"`
	// Missed, in an open loop, counts the requests due in the measured
	// window that were never sent: the workers were still behind when the
	// run ended (Grace after the duration) or it was interrupted. They are
	// not in Sent; a target that cannot keep up shows here and in latency.
	Missed int64 `json:"missed"`
	// Interrupted is true when the run was stopped early (Ctrl-C).
	Interrupted bool `json:"interrupted"`
	// Verify says how answers were checked (--verify): "" when they were
	// not asked to be, "against the reference of NAME", or "not verified:
	// WHY" (a function without a reference, such as a Python function).
	Verify string `json:"verify"`
	// VerifiedRows is the rows of answers compared with the reference (of
	// every request, warmup included); WrongRows those that differed.
	VerifiedRows int64 `json:"verified_rows"`
	WrongRows    int64 `json:"wrong_rows"`
	// MissingRows is the input rows without an answer in an answer that
	// came (a short result, or a stream that ended cleanly without one);
	// DuplicatedRows the rows of answers beyond their input's. Requests
	// that failed with a gRPC status are in Errors, not here.
	MissingRows    int64 `json:"missing_rows"`
	DuplicatedRows int64 `json:"duplicated_rows"`
	// VerifySample describes the first wrong, missing or duplicated row.
	VerifySample string `json:"verify_sample"`
}

// addChecks adds a worker's verification counts.
func (r *Report) addChecks(c checks) {
	r.VerifiedRows += c.verified
	r.WrongRows += c.wrong
	r.MissingRows += c.missing
	r.DuplicatedRows += c.duplicated
	if r.VerifySample == "" {
		r.VerifySample = c.sample
	}
}

// BadRows is the wrong, missing and duplicated rows --verify found.
func (r *Report) BadRows() int64 { return r.WrongRows + r.MissingRows + r.DuplicatedRows }

// Latency is a latency distribution in microseconds (HdrHistogram, 3
// significant digits).
type Latency struct {
	Min  int64   `json:"min"`
	Mean float64 `json:"mean"`
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	P999 int64   `json:"p99_9"`
	Max  int64   `json:"max"`
}

// Outcome is one measured request.
type Outcome struct {
	// Due and Done are since the start of the run: when the request was
	// due (its latency starts) and when its result was read or it failed.
	Due, Done time.Duration
	// Rows and Bytes of the input batch.
	Rows, Bytes int64
	// Code is "" for success, else the gRPC code name (or "BadResult");
	// Msg says what went wrong.
	Code, Msg string
}

// maxLatencyUS is the largest latency the histograms hold: one hour.
const maxLatencyUS = int64(time.Hour / time.Microsecond)

// Tally accumulates outcomes. It is not safe for concurrent use: each
// worker keeps one, and Merge adds them up.
type Tally struct {
	hist             *hdrhistogram.Histogram
	sent, ok, failed int64
	rows, bytes      int64
	errors           map[string]int64
	samples          map[string]string
	lastEnd          time.Duration
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{hist: hdrhistogram.New(1, maxLatencyUS, 3), errors: map[string]int64{}, samples: map[string]string{}}
}

// Add counts one measured request.
func (t *Tally) Add(o Outcome) {
	t.sent++
	if o.Done > t.lastEnd {
		t.lastEnd = o.Done
	}
	if o.Code != "" {
		t.failed++
		t.errors[o.Code]++
		if _, ok := t.samples[o.Code]; !ok {
			t.samples[o.Code] = o.Msg
		}
		return
	}
	t.ok++
	t.rows += o.Rows
	t.bytes += o.Bytes
	us := int64((o.Done - o.Due) / time.Microsecond)
	if us < 1 {
		us = 1
	}
	if us > maxLatencyUS {
		us = maxLatencyUS
	}
	_ = t.hist.RecordValue(us) // in range by construction
}

// Merge adds another tally's counts to t.
func (t *Tally) Merge(o *Tally) {
	t.hist.Merge(o.hist)
	t.sent += o.sent
	t.ok += o.ok
	t.failed += o.failed
	t.rows += o.rows
	t.bytes += o.bytes
	for k, v := range o.errors {
		t.errors[k] += v
	}
	for k, v := range o.samples {
		if _, ok := t.samples[k]; !ok {
			t.samples[k] = v
		}
	}
	if o.lastEnd > t.lastEnd {
		t.lastEnd = o.lastEnd
	}
}

// Fill sets the counts, rates and latencies of rep from the tally. The
// measured time runs from measureStart (since the start of the run: the
// end of the warmup) to the last answer; when nothing was answered it is
// fallback.
func (t *Tally) Fill(rep *Report, measureStart, fallback time.Duration) {
	rep.Sent, rep.Succeeded, rep.Failed = t.sent, t.ok, t.failed
	rep.Rows, rep.Bytes = t.rows, t.bytes
	rep.Errors, rep.ErrorSamples = map[string]int64{}, map[string]string{}
	for k, v := range t.errors {
		rep.Errors[k] = v
		rep.ErrorSamples[k] = t.samples[k]
	}
	if t.sent > 0 {
		rep.ErrorRate = float64(t.failed) / float64(t.sent)
	}
	elapsed := t.lastEnd - measureStart
	if t.sent == 0 || elapsed <= 0 {
		elapsed = fallback
	}
	rep.ElapsedS = elapsed.Seconds()
	if rep.ElapsedS > 0 {
		rep.RowsPerS = float64(t.rows) / rep.ElapsedS
		rep.BatchesPerS = float64(t.ok) / rep.ElapsedS
		rep.MBPerS = float64(t.bytes) / 1e6 / rep.ElapsedS
	}
	h := t.hist
	rep.LatencyUS = Latency{Min: h.Min(), Mean: h.Mean(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	if h.TotalCount() == 0 {
		rep.LatencyUS = Latency{}
	}
}

// Summary is the errors in one line: "NotFound 5, Unavailable 1".
func (r *Report) Summary() string {
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, r.Errors[k])
	}
	return strings.Join(parts, ", ")
}

// WriteText prints the report as a table for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("target\t%s", r.Target)
	p("function\t%s", r.Function)
	p("input\t%s (%d distinct batches)", r.Input, r.Batches)
	loop := "closed loop"
	switch {
	case r.Rate > 0:
		loop = fmt.Sprintf("open loop at %g batches/s", r.Rate)
	case r.Speed > 0:
		loop = fmt.Sprintf("open loop at the recorded pacing x %g", r.Speed)
	}
	p("mode\t%s, concurrency %d, %d streams", loop, r.Concurrency, r.Streams)
	p("measured\t%.2f s (warmup %.2f s)", r.ElapsedS, r.WarmupS)
	p("requests\tsent %d  succeeded %d  failed %d (%.2f%%)", r.Sent, r.Succeeded, r.Failed, 100*r.ErrorRate)
	if r.Missed > 0 {
		p("missed\t%d requests were due but never sent: the target fell behind", r.Missed)
	}
	if r.Interrupted {
		p("interrupted\tthe run was stopped early")
	}
	p("throughput\t%s rows/s  %.1f batches/s  %.1f MB/s", human(r.RowsPerS), r.BatchesPerS, r.MBPerS)
	l := r.LatencyUS
	p("latency (us)\tp50 %d  p90 %d  p99 %d  p99.9 %d  max %d  (mean %.0f)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	switch {
	case strings.HasPrefix(r.Verify, "not verified"):
		p("verify\t%s", r.Verify)
	case r.Verify != "":
		p("verify\t%d rows %s: wrong %d  missing %d  duplicated %d", r.VerifiedRows, r.Verify, r.WrongRows, r.MissingRows, r.DuplicatedRows)
		if r.VerifySample != "" {
			p("  first\t%s", oneLine(r.VerifySample))
		}
	}
	if len(r.Errors) > 0 {
		p("errors\t%s", r.Summary())
		keys := make([]string, 0, len(r.ErrorSamples))
		for k := range r.ErrorSamples {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("  %s\t%s", k, oneLine(r.ErrorSamples[k]))
		}
	}
	return tw.Flush()
}

// human prints a rate with a k/M/G suffix.
func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
