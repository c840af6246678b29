// How to cut a batch into tasks: pure functions, no state.
package scheduler

// Range is a task's rows within its batch: [Offset, Offset+Len).
type Range struct {
	Offset int64
	Len    int64
}

// MinTaskRows is the smallest task the default sizing makes: below it the
// cost of a task outweighs the work of a native kernel.
const MinTaskRows = 8192

// TaskRows returns the rows per task for a batch of rows rows: explicit
// when the caller asked (perTask > 0), else enough tasks to keep every
// executor busy but none under MinTaskRows.
func TaskRows(rows, perTask int64, executors int) int64 {
	if perTask > 0 {
		return perTask
	}
	if executors < 1 {
		executors = 1
	}
	per := (rows + int64(executors) - 1) / int64(executors)
	if per < MinTaskRows {
		per = MinTaskRows
	}
	return per
}

// Split cuts rows rows into consecutive ranges of at most per rows. An
// empty batch has no tasks. per must be positive.
func Split(rows, per int64) []Range {
	if rows <= 0 {
		return nil
	}
	if per <= 0 {
		per = rows
	}
	n := (rows + per - 1) / per
	out := make([]Range, 0, n)
	for off := int64(0); off < rows; off += per {
		l := per
		if off+l > rows {
			l = rows - off
		}
		out = append(out, Range{Offset: off, Len: l})
	}
	return out
}
