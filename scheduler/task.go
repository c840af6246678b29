// One task: evaluate a function on a slice of a batch; assemble a batch's
// task results into its output batch.
package scheduler

import (
	"context"
	"errors"
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
	errs     []string    // OnErrorNull: per-row messages, "" for rows that succeeded; nil if none failed
	work     time.Duration
	err      error
}

func (r *taskResult) release() {
	if r.col != nil {
		r.col.Release()
		r.col = nil
	}
}

// runTask evaluates b's function on rows r of rec.
func (s *Scheduler) runTask(ctx context.Context, b *Bound, rec arrow.RecordBatch, seq, idx int, r Range) taskResult {
	res := taskResult{seq: seq, idx: idx}
	if err := ctx.Err(); err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	col, attempts, err := s.evalRetrying(ctx, b, rec, r)
	if err != nil && b.Opts.OnError == OnErrorNull && ctx.Err() == nil && !retryable(err) {
		col, res.errs, err = s.evalRows(ctx, b, rec, r)
	}
	res.work = time.Since(start)
	if err != nil {
		res.err = &TaskError{Func: b.Func.Name(), Batch: seq, Rows: r, Attempts: attempts, Err: err}
		return res
	}
	res.col = col
	return res
}

// retryable reports whether a task that failed with err may run again: its
// executor died; the function itself did not fail.
func retryable(err error) bool { return errors.Is(err, udf.ErrWorkerDied) }

// evalRetrying runs eval, again on a fresh executor after one died, up to
// Opts.Retries more times.
func (s *Scheduler) evalRetrying(ctx context.Context, b *Bound, rec arrow.RecordBatch, r Range) (arrow.Array, int, error) {
	for attempt := 1; ; attempt++ {
		col, err := s.eval(ctx, b, rec, r)
		if err == nil || !retryable(err) || attempt > b.Opts.Retries || ctx.Err() != nil {
			return col, attempt, err
		}
		s.stats.retries.Add(1)
		s.log.Warn("retrying a task whose executor died", zap.String("func", b.Func.Name()),
			zap.Int64("offset", r.Offset), zap.Int64("rows", r.Len), zap.Int("attempt", attempt), zap.Error(err))
	}
}

// eval runs the function over rows r of rec and checks the result.
func (s *Scheduler) eval(ctx context.Context, b *Bound, rec arrow.RecordBatch, r Range) (arrow.Array, error) {
	args := make([]arrow.Array, rec.NumCols())
	for i := range args {
		args[i] = array.NewSlice(rec.Column(i), r.Offset, r.Offset+r.Len)
	}
	defer func() {
		for _, a := range args {
			a.Release()
		}
	}()
	col, err := b.Func.Eval(ctx, s.cfg.Mem, args)
	if err != nil {
		return nil, err
	}
	if int64(col.Len()) != r.Len || !arrow.TypeEqual(col.DataType(), b.OutType) {
		got := fmt.Sprintf("%d rows of %s", col.Len(), col.DataType())
		col.Release()
		return nil, fmt.Errorf("%w: %s returned %s, want %d rows of %s", ErrBadResult, b.Func.Name(), got, r.Len, b.OutType)
	}
	return col, nil
}

// evalRows isolates failing rows: it evaluates each row of r alone, making
// the failed ones null and recording their messages.
func (s *Scheduler) evalRows(ctx context.Context, b *Bound, rec arrow.RecordBatch, r Range) (arrow.Array, []string, error) {
	parts := make([]arrow.Array, 0, r.Len)
	defer func() {
		for _, p := range parts {
			p.Release()
		}
	}()
	errs := make([]string, r.Len)
	for i := int64(0); i < r.Len; i++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		col, _, err := s.evalRetrying(ctx, b, rec, Range{Offset: r.Offset + i, Len: 1})
		if err != nil {
			if errors.Is(err, ErrBadResult) || retryable(err) {
				return nil, nil, err
			}
			errs[i] = err.Error()
			col = array.MakeArrayOfNull(s.cfg.Mem, b.OutType, 1)
			s.stats.nulledRows.Add(1)
		}
		parts = append(parts, col)
	}
	col, err := concat(parts, s.cfg.Mem)
	return col, errs, err
}

// assemble joins a complete batch's task results into its output batch.
func (s *Scheduler) assemble(b *Bound, bt *batch) (arrow.RecordBatch, error) {
	rows := bt.rec.NumRows()
	var col arrow.Array
	if len(bt.results) == 0 {
		col = array.MakeArrayOfNull(s.cfg.Mem, b.OutType, 0)
	} else {
		parts := make([]arrow.Array, len(bt.results))
		for i := range bt.results {
			parts[i] = bt.results[i].col
		}
		var err error
		if col, err = concat(parts, s.cfg.Mem); err != nil {
			return nil, err
		}
	}
	cols := []arrow.Array{col}
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
			bld.AppendNulls(int(bt.ranges[r.idx].Len))
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

// concat returns one array holding parts in order: the part itself (with
// a new reference) when there is one, else a copy.
func concat(parts []arrow.Array, mem memory.Allocator) (arrow.Array, error) {
	if len(parts) == 1 {
		parts[0].Retain()
		return parts[0], nil
	}
	return array.Concatenate(parts, mem)
}
