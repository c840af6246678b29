// Which idle Python worker runs a task: a pure choice that prefers a
// worker with the task's function warm.
package udf

// WorkerView is what the choice sees of one idle worker.
type WorkerView struct {
	ID int
	// Warm holds the function IDs the worker has loaded (for a class, with
	// its instance built at its first task there).
	Warm map[string]bool
}

// PickWorker returns the index in idle of the worker to run a task of
// function fn, or -1 when idle is empty. It prefers a worker that has fn
// warm (no LOAD, no unpickling, no class instance to build); else the
// worker with the fewest functions warm, so that functions spread over
// workers rather than pile onto one. Ties go to the lowest ID.
func PickWorker(idle []WorkerView, fn string) int {
	best := -1
	for i, w := range idle {
		if best < 0 || better(w, idle[best], fn) {
			best = i
		}
	}
	return best
}

// better reports whether a beats b for a task of fn.
func better(a, b WorkerView, fn string) bool {
	if wa, wb := a.Warm[fn], b.Warm[fn]; wa != wb {
		return wa
	} else if !wa && len(a.Warm) != len(b.Warm) {
		return len(a.Warm) < len(b.Warm)
	}
	return a.ID < b.ID
}
