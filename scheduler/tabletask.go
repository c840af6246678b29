// Table calls' own steps of a task: evaluate a table function (or a scalar
// one as a table) and check its row indices; build a batch's row-index column.
package scheduler

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiver-udf/quiver/udf"
)

// evalTable runs a table call's function over args, rows r of the batch,
// and returns its values and their row indices, relative to r, checked. A
// scalar function's rows map one to one.
func (c *call) evalTable(args []arrow.Array, r Range) (arrow.Array, []int32, error) {
	tf := c.b.TableFunc
	if tf == nil {
		col, err := c.evalScalar(args, r)
		if err != nil {
			return nil, nil, err
		}
		rows := make([]int32, r.Len)
		for i := range rows {
			rows[i] = int32(i)
		}
		return col, rows, nil
	}
	idx, vals, work, err := tf.EvalTable(c.ctx, c.s.cfg.Mem, args)
	if err != nil {
		return nil, nil, err
	}
	defer idx.Release()
	if c.costed != nil {
		c.cost.observe(r.Len, work)
	}
	bad := ""
	switch {
	case idx.Len() != vals.Len():
		bad = fmt.Sprintf("%d row indices for %d values", idx.Len(), vals.Len())
	case !arrow.TypeEqual(vals.DataType(), c.b.OutType):
		bad = fmt.Sprintf("values of %s, want %s", vals.DataType(), c.b.OutType)
	case idx.NullN() > 0:
		bad = fmt.Sprintf("%d null row indices", idx.NullN())
	}
	if bad != "" {
		vals.Release()
		return nil, nil, fmt.Errorf("%w: table function %s returned %s", ErrBadResult, c.name, bad)
	}
	rows := append([]int32(nil), idx.Int32Values()...)
	if err := CheckTableRows(rows, r.Len); err != nil {
		vals.Release()
		return nil, nil, fmt.Errorf("table function %s: %w", c.name, err)
	}
	return vals, rows, nil
}

// checkTableBatch refuses a batch too long for int32 row indices (a few
// bytes of null columns can claim 2^40 rows).
func checkTableBatch(rows int64) error {
	if rows > math.MaxInt32 {
		return udf.Invalidf("a table call's batch has %d rows, more than its int32 row indices can name", rows)
	}
	return nil
}

// rowColumn is a table call's row-index column for a complete batch.
func (s *Scheduler) rowColumn(bt *batch) arrow.Array {
	parts := make([]TableRows, len(bt.results))
	for i, r := range bt.results {
		parts[i] = TableRows{Offset: bt.ranges[r.idx].Offset, Rows: r.rows}
	}
	bld := array.NewInt32Builder(s.cfg.Mem)
	defer bld.Release()
	bld.AppendValues(JoinTableRows(parts), nil)
	return bld.NewArray()
}
