// Table calls: checking a task's row indices and joining the tasks' rows
// into their batch's row-index column. Pure functions, no state.
package scheduler

import "fmt"

// CheckTableRows checks the row indices a table function returned for a
// task of rows rows: each must name a row of the task, in ascending order
// (an input row's output rows are consecutive, and follow the rows of the
// input rows before it).
func CheckTableRows(idx []int32, rows int64) error {
	prev := int32(0)
	for i, v := range idx {
		if v < 0 || int64(v) >= rows {
			return fmt.Errorf("%w: output row %d has row index %d, outside the task's %d input rows [0, %d)", ErrBadResult, i, v, rows, rows)
		}
		if v < prev {
			return fmt.Errorf("%w: output row %d has row index %d after %d: row indices must not decrease", ErrBadResult, i, v, prev)
		}
		prev = v
	}
	return nil
}

// TableRows is one task's checked row indices, relative to the task.
type TableRows struct {
	Offset int64 // the task's first row within its batch
	Rows   []int32
}

// JoinTableRows returns the row-index column of a batch whose tasks, in
// order, returned parts: each index made relative to the batch.
func JoinTableRows(parts []TableRows) []int32 {
	n := 0
	for _, p := range parts {
		n += len(p.Rows)
	}
	out := make([]int32, 0, n)
	for _, p := range parts {
		for _, v := range p.Rows {
			out = append(out, v+int32(p.Offset))
		}
	}
	return out
}
