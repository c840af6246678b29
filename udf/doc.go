// Package udf says what runs and how: the function catalog, signatures and
// type checks, the native Go kernels, and the Python worker pool.
//
// A Func is a vectorized function over Arrow arrays. Bind checks the argument
// types of a call once (naming the argument position, the expected and the
// actual type) and returns the output type; Eval then runs over argument
// arrays of equal length and returns one array of the same length. Every
// built-in is null in, null out.
//
// A Catalog maps names to functions. It is safe for concurrent use; there is
// no global catalog: NewBuiltinCatalog returns a fresh one holding the
// built-ins, and callers own it.
//
// Adding a native function is one file that implements Func and one line in
// builtins.go. A function of no arguments also implements Nullary
// (builtin_healthy); one that takes any type advertises AnyField (identity).
//
// Python functions (PyFunc) run on a WorkerPool of `python -m quiver.worker`
// processes (docs/worker-protocol.md). A PyFunc is Costed: EvalWork reports
// the time its worker spent in the function, and the scheduler, which owns
// the estimate, sizes tasks and runs them against the pool's Size. The pool
// is safe for concurrent use; one mutex guards its idle workers and the
// callers waiting for one. It remembers which functions each worker has
// loaded, and PickWorker, a pure function of the idle workers and the
// task's function (scenarios in testdata/pick.txt), chooses a worker that
// has it warm, so that a function and a class's instance stay where they
// were loaded. A released worker goes to the longest waiting caller first.
// A worker that dies is replaced; Close stops them all. A PyFunc accepts any
// arguments unless SetArgs declared them; it sends the task context its call
// carries (WithTaskContext) with each task. A PyFunc with SetConcurrency(N)
// (Concurrent) has each worker run N rows of a task at once, for functions
// that wait; the pool still gives a worker one task at a time. A PyFunc of
// concurrency 1 (Grouped, pygroup.go) also runs a group of small tasks in
// one round trip: one TASK whose "parts" the worker calls the function on
// one by one, each part's time and error reported apart.
package udf
