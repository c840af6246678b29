// The schedule of a run: which batch each request sends, when it is due,
// whether it is measured. Plain values, no clock.
package loadtest

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Plan decides the requests of a run. Requests are numbered k = 0, 1, ...
// in the order workers take them. In a closed loop a request is due when a
// worker takes it; in an open loop (Rate or Pacing set) it is due at a
// fixed time since the start of the run, whether or not a worker is free
// then, and its latency counts from that time: a target that falls behind
// shows it as latency (no coordinated omission).
type Plan struct {
	// Batches is the number of distinct batches; request k sends batch
	// k mod Batches. At least 1.
	Batches int
	// Rate > 0: open loop at a fixed rate in requests per second across all
	// workers; request k is due at k/Rate.
	Rate float64
	// Pacing, if not nil: open loop keeping a recording's pacing; request k
	// is due at (k / Batches) * Period + Pacing[k mod Batches]. See
	// ReplayPacing.
	Pacing []time.Duration
	// Period is the length of one pass over Pacing.
	Period time.Duration
	// Warmup: requests due before it are sent but not measured.
	Warmup time.Duration
	// Duration > 0: the measured requests are those due in
	// [Warmup, Warmup+Duration), and none is sent after. Zero: no time
	// limit (Limit must be set).
	Duration time.Duration
	// Limit > 0: at most Limit requests (one pass over a recording is
	// Limit = Batches).
	Limit int64
}

// Request is one request of a run.
type Request struct {
	K        int64
	Batch    int           // index of the batch to send
	Due      time.Duration // since the start of the run
	Measured bool          // due after the warmup: it counts in the report
}

// Open reports whether the plan is an open loop.
func (p Plan) Open() bool { return p.Rate > 0 || p.Pacing != nil }

// Check reports a plan that cannot run.
func (p Plan) Check() error {
	switch {
	case p.Batches < 1:
		return errors.New("no batches to send")
	case p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0):
		return fmt.Errorf("rate %v: want a positive number of batches per second", p.Rate)
	case p.Rate > 0 && p.Pacing != nil:
		return errors.New("a fixed rate and a recording's pacing exclude each other")
	case p.Pacing != nil && (len(p.Pacing) != p.Batches || p.Period <= 0):
		return errors.New("pacing needs one offset per batch and a positive period")
	case p.Warmup < 0 || p.Duration < 0 || p.Limit < 0:
		return errors.New("negative warmup, duration or limit")
	case p.Duration == 0 && p.Limit == 0:
		return errors.New("neither a duration nor a number of requests: the run would not end")
	}
	return nil
}

// Next returns request k, or false when the run has no request k. now is
// the time since the start of the run: when a closed loop sends it.
func (p Plan) Next(k int64, now time.Duration) (Request, bool) {
	if p.Limit > 0 && k >= p.Limit {
		return Request{}, false
	}
	r := Request{K: k, Batch: int(k % int64(p.Batches)), Due: now}
	switch {
	case p.Rate > 0:
		r.Due = time.Duration(math.Round(float64(k) / p.Rate * float64(time.Second)))
	case p.Pacing != nil:
		n := int64(p.Batches)
		r.Due = time.Duration(k/n)*p.Period + p.Pacing[k%n]
	}
	if p.Duration > 0 && r.Due >= p.Warmup+p.Duration {
		return Request{}, false
	}
	r.Measured = r.Due >= p.Warmup
	return r, true
}

// ReplayPacing turns the arrival times of a recording's batches (sorted)
// into a plan's Pacing and Period at speed (2 = twice as fast): offsets from
// the first arrival, divided by speed. One pass lasts the recording's span
// plus one mean gap, so that repeated passes keep the mean rate.
func ReplayPacing(arrivals []time.Duration, speed float64) ([]time.Duration, time.Duration, error) {
	if !(speed > 0) || math.IsInf(speed, 0) {
		return nil, 0, fmt.Errorf("speed %v: want a positive factor (1 = as recorded, 2 = twice as fast)", speed)
	}
	n := len(arrivals)
	if n < 2 || arrivals[n-1] <= arrivals[0] {
		return nil, 0, errors.New("the recording has no pacing to keep (fewer than two batches, or all at one instant); replay without --speed, or with --rate")
	}
	pacing := make([]time.Duration, n)
	for i, t := range arrivals {
		if i > 0 && t < arrivals[i-1] {
			return nil, 0, errors.New("arrival times are not sorted")
		}
		pacing[i] = time.Duration(float64(t-arrivals[0]) / speed)
	}
	span := float64(arrivals[n-1] - arrivals[0])
	period := time.Duration((span + span/float64(n-1)) / speed)
	return pacing, period, nil
}

// Unsent counts the measured requests from number k on: in an open loop,
// those a run that stopped taking requests at k never sent. A closed loop
// (whose requests are not due at set times) has none.
func (p Plan) Unsent(k int64) int64 {
	if !p.Open() {
		return 0
	}
	var n int64
	for ; ; k++ {
		r, ok := p.Next(k, 0)
		if !ok {
			return n
		}
		if r.Measured {
			n++
		}
	}
}
