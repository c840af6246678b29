// Cost of a function: a robust fit of work against rows over its recent tasks.
package scheduler

import (
	"math"
	"slices"
)

// CostWindow is how many recent tasks a function's cost estimate rests on.
// A change of cost shows once it holds for about half the window.
const CostWindow = 16

// Cost is what a task of a function costs: PerTaskNs for the task plus
// PerRowNs for each of its rows.
type Cost struct {
	PerTaskNs float64
	PerRowNs  float64
	// Tasks is how many measured tasks the estimate rests on; zero means
	// none yet, and then both costs are zero.
	Tasks int
	// Separated: the fixed part was told from the per-row part, by tasks
	// of different sizes, now or in an earlier window (see CostEstimator).
	// Until then all the cost counts as per row.
	Separated bool
}

// AvgPerRowNs is the equivalent average cost per row of a task of rows
// rows: PerTaskNs/rows + PerRowNs. It is zero before any measurement.
func (c Cost) AvgPerRowNs(rows int64) float64 {
	if c.Tasks == 0 {
		return 0
	}
	return c.PerTaskNs/float64(max(rows, 1)) + c.PerRowNs
}

// CostEstimator fits a function's Cost from measured tasks, each a number
// of rows and the nanoseconds the function spent on them. It keeps the
// last CostWindow tasks and fits work = PerTaskNs + PerRowNs*rows with
// the Theil-Sen estimator (medians of slopes and of intercepts), so that a
// few tasks far off the line (one that waited on a page fault or a garbage
// collection, a first call that built a model) move the estimate little:
// up to about a quarter of the window may be such outliers. Neither part
// is ever negative: a negative slope is taken as flat, a negative
// intercept as all per row.
//
// The fixed part can be told from the per-row part only when task sizes
// differ: while they are all within minRowSpread of each other (tasks of
// one size, as sizing by cost makes them), or fewer than minFitTasks are
// known, the estimate is all per row (the median of the tasks' ns per row)
// until a fit has separated the parts once; after that the fixed part
// found then is kept and the per-row part fitted to what it leaves (the
// median of (ns - PerTaskNs)/rows), so that a function's cost can change
// while sizing keeps every task's size the same. SplitProbing cuts the
// batches of a function not separated yet into tasks of two sizes.
//
// It is a plain value without clocks or locks; its owner serializes use.
type CostEstimator struct {
	rows, ns [CostWindow]float64
	n, next  int // tasks held; where the next one goes
	fit      Cost
	stale    bool // fit is out of date
}

const (
	// minFitTasks is the fewest tasks a two-part fit rests on.
	minFitTasks = 4
	// minRowSpread is the least ratio of the largest task to the smallest
	// (in rows) that separates the fixed cost from the per-row cost.
	minRowSpread = 1.25
)

// Observe records one task of rows rows on which the function worked
// workNs nanoseconds. Tasks without rows or with a meaningless time are
// ignored.
func (e *CostEstimator) Observe(rows int64, workNs float64) {
	if rows <= 0 || !(workNs >= 0) || math.IsInf(workNs, 0) {
		return
	}
	// Fit what is held before it changes: a separation that the window
	// shows now is kept even if nobody asked for the estimate meanwhile
	// (a fit of at most CostWindow tasks costs a microsecond or two).
	e.Estimate()
	e.rows[e.next], e.ns[e.next] = float64(rows), workNs
	e.next = (e.next + 1) % CostWindow
	e.n = min(e.n+1, CostWindow)
	e.stale = true
}

// Estimate returns the cost fitted to the tasks held.
func (e *CostEstimator) Estimate() Cost {
	if e.stale {
		e.fit = fitCost(e.rows[:e.n], e.ns[:e.n], e.fit)
		e.stale = false
	}
	return e.fit
}

// fitCost fits work against rows; x and y hold at most CostWindow points.
// prev is the last fit: its fixed part stands while x cannot separate one.
func fitCost(x, y []float64, prev Cost) Cost {
	n := len(x)
	if n == 0 {
		return Cost{}
	}
	var buf [CostWindow]float64
	perRow := func() float64 {
		for i := range x {
			buf[i] = y[i] / x[i]
		}
		return median(buf[:n])
	}
	if n < minFitTasks || slices.Max(x) < minRowSpread*slices.Min(x) {
		if prev.Separated {
			for i := range x {
				buf[i] = (y[i] - prev.PerTaskNs) / x[i]
			}
			return Cost{PerTaskNs: prev.PerTaskNs, PerRowNs: max(median(buf[:n]), 0), Tasks: n, Separated: true}
		}
		return Cost{PerRowNs: perRow(), Tasks: n}
	}
	// Theil-Sen: the slope is the median of the slopes between tasks of
	// different sizes, the intercept the median of what the slope leaves.
	var slopes [CostWindow * (CostWindow - 1) / 2]float64
	k := 0
	for i := range x {
		for j := i + 1; j < n; j++ {
			if x[i] != x[j] {
				slopes[k] = (y[j] - y[i]) / (x[j] - x[i])
				k++
			}
		}
	}
	b := max(median(slopes[:k]), 0)
	for i := range x {
		buf[i] = y[i] - b*x[i]
	}
	a := median(buf[:n])
	if a < 0 {
		return Cost{PerRowNs: perRow(), Tasks: n}
	}
	return Cost{PerTaskNs: a, PerRowNs: b, Tasks: n, Separated: true}
}

// median of v, which it reorders.
func median(v []float64) float64 {
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}
