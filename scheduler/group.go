// Groups: many small tasks of one batch sent to a worker as one job
// (udf.Grouped), each task still a call of the function of its own.
package scheduler

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiver-udf/quiver/udf"
)

// groupSize is how many consecutive tasks of batch p go to a worker as
// one job: 1 (no groups) unless the function groups (udf.Grouped) and its
// cost is measured, and the node is alone (a group is placed here as a
// whole; a node with peers places each task). Table calls and the task
// API's calls are never grouped.
func (c *call) groupSize(p *taskPlan) int {
	g, ok := c.b.Func.(udf.Grouped)
	if !ok || !g.Groups() || c.costed == nil || c.lane != LaneWorkers || c.b.Table ||
		c.b.Opts.Independent || c.s.cfg.Remote != nil || len(p.bt.ranges) < 2 {
		return 1
	}
	est := c.cost.estimate()
	if est.Tasks == 0 {
		return 1
	}
	r := p.bt.ranges[0]
	return GroupSize(len(p.bt.ranges), est.AvgPerRowNs(r.Len)*float64(r.Len), c.costed.Parallelism())
}

// placeGroup queues tasks [from, to) of batch p as one job in the lane.
func (c *call) placeGroup(p *taskPlan, from, to int) error {
	select {
	case c.s.pool.lanes[c.lane].jobs <- func() { c.runGroup(p.bt, p.seq, from, to) }:
		for range to - from {
			c.dispatched()
		}
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// runGroup evaluates tasks [from, to) of bt in one round trip and delivers
// one result per task. A task that raised is then handled as a task of its
// own whose first attempt failed so (retried, its rows isolated, or the
// call failed, as Decide says); when the group as a whole failed (its
// worker died, its result was not understood), each task runs again alone.
func (c *call) runGroup(bt *batch, seq, from, to int) {
	for _, r := range c.evalGroup(bt, seq, from, to) {
		c.inbox.put(r)
	}
}

func (c *call) evalGroup(bt *batch, seq, from, to int) []taskResult {
	out := make([]taskResult, 0, to-from)
	if err := c.ctx.Err(); err != nil {
		for idx := from; idx < to; idx++ {
			out = append(out, taskResult{seq: seq, idx: idx, err: err})
		}
		return out
	}
	first, last := bt.ranges[from], bt.ranges[to-1]
	rows := Range{Offset: first.Offset, Len: last.Offset + last.Len - first.Offset}
	parts := make([]int64, to-from)
	for i := range parts {
		parts[i] = bt.ranges[from+i].Len
	}
	args := sliceArgs(bt.rec, rows)
	col, works, errs, err := c.b.Func.(udf.Grouped).EvalParts(c.ctx, c.s.cfg.Mem, args, parts)
	releaseAll(args)
	if err == nil && (int64(col.Len()) != rows.Len || !arrow.TypeEqual(col.DataType(), c.b.OutType)) {
		err = fmt.Errorf("%w: %s returned %d rows of %s for a group of %d, want %s", ErrBadResult, c.name, col.Len(), col.DataType(), rows.Len, c.b.OutType)
		col.Release()
	}
	if err != nil {
		for idx := from; idx < to; idx++ {
			out = append(out, c.runTask(bt.rec, seq, idx, bt.ranges[idx], 0))
		}
		return out
	}
	defer col.Release()
	var off int64
	for i, n := range parts {
		idx := from + i
		if errs[i] != nil {
			out = append(out, c.afterFailed(bt.rec, seq, idx, bt.ranges[idx], errs[i]))
		} else {
			c.cost.observe(n, works[i])
			out = append(out, taskResult{seq: seq, idx: idx, col: array.NewSlice(col, off, off+n), work: works[i]})
		}
		off += n
	}
	return out
}

// afterFailed is the result of task idx (rows r of rec) whose first
// attempt, in a group, failed with err: what runTask makes of it.
func (c *call) afterFailed(rec arrow.RecordBatch, seq, idx int, r Range, err error) taskResult {
	act := Decide(Attempt{Failure: Classify(err, c.ctx.Err()), Attempts: 1, Retries: c.b.Opts.Retries, OnError: c.b.Opts.OnError})
	if act == Retry {
		c.s.stats.retries.Add(1)
		return c.runTask(rec, seq, idx, r, 1)
	}
	return c.settle(rec, seq, idx, r, nil, nil, 1, act, err)
}
