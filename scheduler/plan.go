// How to cut a batch into tasks: pure functions, no state.
package scheduler

import "math"

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

// MaxTasksPerBatch bounds the tasks one batch is cut into, whatever task
// size was asked for: a message of a few bytes can claim 2^40 rows (null
// columns carry no buffers), and a Range per row would exhaust memory.
const MaxTasksPerBatch = 1 << 16

// Split cuts rows rows into consecutive ranges of at most per rows, or of
// more when that would make over MaxTasksPerBatch ranges. An empty batch
// has no tasks. per <= 0 means the whole batch.
func Split(rows, per int64) []Range {
	if rows <= 0 {
		return nil
	}
	if per <= 0 {
		per = rows
	}
	per = max(per, (rows-1)/MaxTasksPerBatch+1)
	out := make([]Range, 0, (rows-1)/per+1)
	for off := int64(0); off < rows; {
		l := min(per, rows-off)
		out = append(out, Range{Offset: off, Len: l})
		off += l
	}
	return out
}

// MinTaskTime is the least work a task of a function with a measured cost
// should carry: enough that the per-task overhead (tens of microseconds)
// stays a small fraction of it.
const MinTaskTime = 2e6 // ns

// TasksPerWorker is how many tasks per worker a costly batch is cut into, so
// that uneven rows balance out across workers.
const TasksPerWorker = 4

// TaskRowsByCost sizes tasks for a function whose cost per row is known:
// each worker gets up to TasksPerWorker tasks of the batch, but no task
// carries less than MinTaskTime of work. With no measurement yet (costNs
// <= 0) the batch is spread evenly over the workers, so that a heavy
// function fans out from its first batch.
func TaskRowsByCost(rows int64, costNs float64, workers int) int64 {
	if workers < 1 {
		workers = 1
	}
	if rows <= 0 {
		return 1
	}
	spread := (rows + int64(workers) - 1) / int64(workers)
	if costNs <= 0 {
		return spread
	}
	per := (rows + int64(workers*TasksPerWorker) - 1) / int64(workers*TasksPerWorker)
	if least := int64(MinTaskTime/costNs) + 1; per < least {
		per = least
	}
	return min(per, rows)
}

// IndependentTaskRows sizes tasks whose rows are independent jobs (the task
// API: one row per submitted task, of unknown and possibly uneven cost).
// With no measurement yet every row is its own task, so that slow jobs fan
// out one by one. Once the function's cost per row is known, cheap rows are
// packed so that a task carries about MinTaskTime of work, but never more
// than an even share of the batch per worker: a batch of tiny jobs still
// keeps every worker busy, and a costly job stays alone.
func IndependentTaskRows(rows int64, costNs float64, workers int) int64 {
	if workers < 1 {
		workers = 1
	}
	if rows <= 0 || costNs <= 0 {
		return 1
	}
	spread := (rows + int64(workers) - 1) / int64(workers)
	return max(1, min(int64(MinTaskTime/costNs), spread))
}

// ConcurrentTaskRows sizes tasks of a function whose workers each run n
// rows at once (udf.Concurrent): the pool counts as workers*n slots, and a
// task is n slots' rows, so that one task keeps one worker's n threads
// busy. A slot's rows are IndependentTaskRows over workers*n slots: one
// row until the cost per row is known (such functions wait on something,
// each row is worth a slot), then cheap rows packed to about MinTaskTime a
// slot. A worker that dies costs a retry of its one task: n slots' rows.
func ConcurrentTaskRows(rows int64, costNs float64, workers, n int) int64 {
	if n < 1 {
		n = 1
	}
	if rows <= 0 {
		return 1
	}
	slot := IndependentTaskRows(rows, costNs, max(workers, 1)*n)
	return min(slot*int64(n), rows)
}

// FixedShare is the largest share of a task's work that its fixed part may
// take: a function with a large cost per call (a model's predict) gets
// tasks long enough to pay it once per about nine times its worth of rows.
const FixedShare = 0.1

// TaskRowsForCost sizes tasks from a function's fitted cost: as
// TaskRowsByCost at the batch's equivalent cost per row, but once the
// fixed part is separated, no task so small that the fixed part is more
// than FixedShare of it. A function whose cost is all fixed runs each
// batch as one task: splitting would only repeat its cost.
func TaskRowsForCost(rows int64, c Cost, workers int) int64 {
	per := TaskRowsByCost(rows, c.AvgPerRowNs(rows), workers)
	if rows <= 0 || !c.Separated || c.PerTaskNs <= 0 {
		return per
	}
	if c.PerRowNs <= 0 {
		return rows
	}
	least := int64(math.Ceil(c.PerTaskNs * (1 - FixedShare) / (FixedShare * c.PerRowNs)))
	return min(max(per, least), rows)
}

// SoloMs is what a batch of rows rows, run as tasks tasks that took workMs
// in all, would have cost as one task (BatchInfo.SoloMs): workMs for one
// task, or while the function's fixed part is not yet told from its
// per-row part; else its fitted cost of rows in one call, never more than
// workMs.
func SoloMs(tasks int, rows int64, c Cost, workMs float64) float64 {
	if tasks <= 1 || !c.Separated {
		return workMs
	}
	return min((c.PerTaskNs+c.PerRowNs*float64(rows))/1e6, workMs)
}

// GroupTime is the work a group of small tasks carries at most
// (GroupSize): a worker answers the group in one round trip, so its
// per-task costs (frames, Arrow IPC, scheduling) are paid once for all.
const GroupTime = 1e6 // ns

// GroupSize is how many of a batch's tasks tasks, each costing costNs
// (0: unknown), go to a worker together: as many as GroupTime of work
// holds, but so that each of workers gets at least two groups of the
// batch; 1 when the cost is unknown or a task alone is GroupTime or more.
func GroupSize(tasks int, costNs float64, workers int) int {
	if tasks <= 1 || costNs <= 0 || costNs >= GroupTime {
		return 1
	}
	spread := (tasks + 2*max(workers, 1) - 1) / (2 * max(workers, 1))
	return max(1, min(int(GroupTime/costNs), spread))
}

// IdleFixedShare is the largest share of a task's work its fixed part may
// take when a batch is cut over workers that would otherwise sit idle: the
// fixed part repeated in each task is paid by idle CPU, and the batch ends
// sooner (a stream of batches one at a time, as a skewed Spark partition
// sends them, gets more than one worker).
const IdleFixedShare = 0.3

// TaskRowsForIdle is per (TaskRowsForCost's size) or, when idle workers
// are free now and the fitted cost has a separated fixed part, the batch
// cut in as many even tasks as idle workers (at most workers) as keeps
// each task's fixed part within IdleFixedShare; never larger tasks than per.
func TaskRowsForIdle(rows int64, c Cost, workers, idle int, per int64) int64 {
	if !c.Separated || c.PerTaskNs <= 0 || c.PerRowNs <= 0 || idle < 2 || rows < 2 {
		return per
	}
	for k := min(idle, workers); k >= 2; k-- {
		perK := (rows + int64(k) - 1) / int64(k)
		if perK >= per {
			break
		}
		if c.PerTaskNs <= IdleFixedShare*(c.PerTaskNs+c.PerRowNs*float64(perK)) {
			return perK
		}
	}
	return per
}

// SplitProbing cuts rows rows as Split does, but into tasks of two sizes,
// per and half of it in turn, so that the measured tasks tell a function's
// fixed cost from its cost per row (CostEstimator). A batch that would be
// one task stays one.
func SplitProbing(rows, per int64) []Range {
	if rows <= 0 || per <= 0 || per >= rows || per < 2 {
		return Split(rows, per)
	}
	per = max(per, (rows-1)/MaxTasksPerBatch+1)
	var out []Range
	for off, i := int64(0), 0; off < rows; i++ {
		l := per
		if i%2 == 1 {
			l = per / 2
		}
		l = min(l, rows-off)
		out = append(out, Range{Offset: off, Len: l})
		off += l
	}
	return out
}
