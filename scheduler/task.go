// One task: evaluate a function on a slice of a batch, retrying as Decide
// says; assemble a batch's task results into its output batch. Table calls'
// own steps are in tabletask.go.
package scheduler

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/udf"
)

// TaskError is a task that failed: which function, which batch and rows.
// It wraps the function's error, so errors.Is sees through it.
type TaskError struct {
	Func     string
	Batch    int
	Rows     Range
	Attempts int
	Err      error
}

func (e *TaskError) Error() string {
	tries := ""
	if e.Attempts > 1 {
		tries = fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	return fmt.Sprintf("%s failed on batch %d, rows [%d, %d)%s: %v", e.Func, e.Batch, e.Rows.Offset, e.Rows.Offset+e.Rows.Len, tries, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// taskResult is what a task hands back to its call.
type taskResult struct {
	seq, idx int
	col      arrow.Array // nil on error
	rows     []int32     // table calls: each output row's input row, relative to the task
	errs     []string    // OnErrorNull: per-output-row messages, "" for rows that succeeded; nil if none failed
	work     time.Duration
	err      error
}

func (r *taskResult) release() {
	if r.col != nil {
		r.col.Release()
		r.col = nil
	}
}

// runTask evaluates the call's function on rows r of rec, after prior
// evaluations that a lost peer made.
func (c *call) runTask(rec arrow.RecordBatch, seq, idx int, r Range, prior int) taskResult {
	if err := c.ctx.Err(); err != nil {
		return taskResult{seq: seq, idx: idx, err: err}
	}
	start := time.Now()
	col, rows, attempts, act, err := c.evalRetrying(rec, r, false, prior)
	res := c.settle(rec, seq, idx, r, col, rows, attempts, act, err)
	res.work = time.Since(start)
	return res
}

// settle makes task idx's result from its last evaluation (col and rows,
// or err) after attempts of them, as Decide's act says: its rows isolated,
// the task failed, or the evaluation's values.
func (c *call) settle(rec arrow.RecordBatch, seq, idx int, r Range, col arrow.Array, rows []int32, attempts int, act Action, err error) taskResult {
	res := taskResult{seq: seq, idx: idx}
	if act == Isolate {
		col, rows, res.errs, err = c.evalRows(rec, r)
	}
	if err != nil {
		res.err = c.taskFailed(&TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: attempts, Err: err})
		return res
	}
	res.col, res.rows = col, rows
	return res
}

// evalRetrying evaluates rows r of rec (one row alone when row is set) as
// often as Decide says to, and returns the last evaluation, how many were
// made (prior ones elsewhere included), and what Decide says follows it.
func (c *call) evalRetrying(rec arrow.RecordBatch, r Range, row bool, prior int) (arrow.Array, []int32, int, Action, error) {
	for attempt := prior + 1; ; attempt++ {
		col, rows, err := c.eval(rec, r)
		if err == nil {
			return col, rows, attempt, Done, nil
		}
		act := Decide(Attempt{Failure: Classify(err, c.ctx.Err()), Attempts: attempt, Row: row,
			Retries: c.b.Opts.Retries, OnError: c.b.Opts.OnError})
		if act != Retry {
			return col, rows, attempt, act, err
		}
		c.s.stats.retries.Add(1)
		c.s.log.Warn("retrying a task whose executor died", zap.String("func", c.name), zap.String("call", c.id),
			zap.Int64("offset", r.Offset), zap.Int64("rows", r.Len), zap.Int("attempt", attempt), zap.Error(err))
	}
}

// eval runs the function over rows r of rec and checks the result: one
// value per row, or under a table call the values and their row indices.
func (c *call) eval(rec arrow.RecordBatch, r Range) (arrow.Array, []int32, error) {
	args := sliceArgs(rec, r)
	defer releaseAll(args)
	if c.b.Table {
		return c.evalTable(args, r)
	}
	col, err := c.evalScalar(args, r)
	return col, nil, err
}

// sliceArgs is rows r of each of rec's columns, zero-copy; releaseAll
// releases them.
func sliceArgs(rec arrow.RecordBatch, r Range) []arrow.Array {
	args := make([]arrow.Array, rec.NumCols())
	for i := range args {
		args[i] = array.NewSlice(rec.Column(i), r.Offset, r.Offset+r.Len)
	}
	return args
}

func releaseAll(arrs []arrow.Array) {
	for _, a := range arrs {
		a.Release()
	}
}

// evalScalar runs the function over args, rows r of the batch. A function
// that measures its work reports it to the function's cost.
func (c *call) evalScalar(args []arrow.Array, r Range) (arrow.Array, error) {
	var (
		col arrow.Array
		err error
	)
	if nf, ok := c.b.Func.(udf.Nullary); ok && len(args) == 0 {
		col, err = nf.EvalRows(c.ctx, c.s.cfg.Mem, int(r.Len))
	} else if c.costed != nil {
		var work time.Duration
		if col, work, err = c.costed.EvalWork(c.ctx, c.s.cfg.Mem, args); err == nil {
			c.cost.observe(r.Len, work)
		}
	} else {
		col, err = c.b.Func.Eval(c.ctx, c.s.cfg.Mem, args)
	}
	if err != nil {
		return nil, err
	}
	if int64(col.Len()) != r.Len || !arrow.TypeEqual(col.DataType(), c.b.OutType) {
		got := fmt.Sprintf("%d rows of %s", col.Len(), col.DataType())
		col.Release()
		return nil, fmt.Errorf("%w: %s returned %s, want %d rows of %s", ErrBadResult, c.name, got, r.Len, c.b.OutType)
	}
	return col, nil
}

// evalRows isolates failing rows: it evaluates each row of r alone, making
// each failed one a null output row and recording its message. Under a
// table call it also returns each output row's row index.
func (c *call) evalRows(rec arrow.RecordBatch, r Range) (arrow.Array, []int32, []string, error) {
	mem := c.s.cfg.Mem
	parts := make([]arrow.Array, 0, r.Len)
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	errs := make([]string, 0, r.Len)
	var rows []int32
	for i := int64(0); i < r.Len; i++ {
		if err := c.ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		col, _, _, act, err := c.evalRetrying(rec, Range{Offset: r.Offset + i, Len: 1}, true, 0)
		msg := ""
		switch act {
		case Fail:
			return nil, nil, nil, err
		case NullRow:
			msg = err.Error()
			col = array.MakeArrayOfNull(mem, c.b.OutType, 1)
			c.s.stats.nulledRows.Add(1)
		}
		for k := 0; k < col.Len(); k++ {
			errs = append(errs, msg)
			if c.b.Table {
				rows = append(rows, int32(i))
			}
		}
		parts = append(parts, col)
	}
	col, err := concatOrEmpty(parts, mem, c.b.OutType)
	return col, rows, errs, err
}

// assemble joins a complete batch's task results into its output batch.
func (s *Scheduler) assemble(b *Bound, bt *batch) (arrow.RecordBatch, error) {
	parts := make([]arrow.Array, len(bt.results))
	for i := range bt.results {
		parts[i] = bt.results[i].col
	}
	col, err := concatOrEmpty(parts, s.cfg.Mem, b.OutType)
	if err != nil {
		return nil, err
	}
	rows := int64(col.Len())
	cols := []arrow.Array{col}
	if b.Table {
		cols = append([]arrow.Array{s.rowColumn(bt)}, cols...)
	}
	if b.Opts.OnError == OnErrorNull {
		cols = append(cols, s.errorColumn(bt, rows))
	}
	out := array.NewRecordBatch(b.Out, cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}

// errorColumn builds the utf8 column of per-row error messages.
func (s *Scheduler) errorColumn(bt *batch, rows int64) arrow.Array {
	bld := array.NewStringBuilder(s.cfg.Mem)
	defer bld.Release()
	bld.Reserve(int(rows))
	for _, r := range bt.results {
		if r.errs == nil {
			bld.AppendNulls(r.col.Len())
			continue
		}
		for _, e := range r.errs {
			if e == "" {
				bld.AppendNull()
			} else {
				bld.Append(e)
			}
		}
	}
	return bld.NewArray()
}

// concatOrEmpty is concat, or an empty array of type t for no parts.
func concatOrEmpty(parts []arrow.Array, mem memory.Allocator, t arrow.DataType) (arrow.Array, error) {
	if len(parts) == 0 {
		return array.MakeArrayOfNull(mem, t, 0), nil
	}
	return concat(parts, mem)
}

// concat returns one array holding parts in order: the part itself (with
// a new reference) when there is one, else a copy.
func concat(parts []arrow.Array, mem memory.Allocator) (arrow.Array, error) {
	if len(parts) == 1 {
		parts[0].Retain()
		return parts[0], nil
	}
	return array.Concatenate(parts, mem)
}
