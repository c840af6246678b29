// Package scheduler decides where and when a call's work runs.
//
// A call is a stream of input record batches for one function. For every
// input batch the scheduler cuts zero-copy slices of rows (a task each),
// runs them on a bounded pool shared by all calls, and re-sequences the
// results into exactly one output batch with the same number of rows,
// emitted in input order.
//
// # The deterministic core
//
// The decisions live in plain functions and small state machines without
// clocks, goroutines or I/O, each tested from scenario files in testdata/
// (scenario_test.go says the commands):
//
//   - Split, TaskRows, TaskRowsByCost, TaskRowsForCost, SplitProbing,
//     IndependentTaskRows: how to cut a batch into tasks (split.txt,
//     cost.txt, sizing.txt).
//   - Core: which batches a call may admit (its window), which are
//     complete and may be emitted, in order (sequence.txt, random.txt,
//     errors.txt).
//   - CostEstimator: what a function's task costs, a fixed part per task
//     plus a part per row, fitted robustly (Theil-Sen) over its last
//     CostWindow measured tasks (cost.txt). TaskRowsForCost sizes a
//     function's tasks from it: enough tasks for every worker, none under
//     MinTaskTime of work, and, once the fixed part is told from the part
//     per row, none so small that the fixed part is over FixedShare (10%)
//     of it (a model's predict then runs a batch as one task). Until then
//     SplitProbing cuts its batches in two sizes, which separates the
//     parts; the fixed part found then stands while tasks of one size
//     follow (sizing.txt). ConcurrentTaskRows sizes the tasks of a
//     function whose workers run N rows at once (udf.Concurrent): the pool
//     counts as workers*N slots and a task is N slots' rows, one row a slot
//     until its cost is known, so a dead worker costs a retry of N rows.
//   - Classify and Decide: the retry budget. A task whose executor died
//     (udf.ErrWorkerDied) runs again up to CallOptions.Retries more times;
//     a function's own failure never does, and under OnErrorNull its rows
//     are isolated and the failed ones made null; a bad result is never
//     retried; after the call ended nothing is (retry.txt).
//   - Placement: where each task runs. Place(Snapshot, TaskInfo) returns a
//     Decision, "here" or "on peer X". It is consulted once per task as
//     the task is dispatched, with the state of the task's lane and, when
//     Config.Remote is set, the peers' views. Local runs everything here;
//     on a node without Remote a Decision naming a peer fails the call
//     with ErrNoPeers (placement.txt). Hybrid is the cluster's
//     (hybrid.txt): here while a local slot is free; past that, a task
//     moves to a peer with a free slot when moving its bytes costs at most
//     half of running it, least loaded first with a random pick among the
//     top 20% (peers below half their slots count as equally idle), never
//     a task that a peer sent. Its randomness comes in the Snapshot, so it
//     stays pure; it looks at 16 peers at most, chosen at random, so a
//     decision costs the same at any cluster size. internal/placesim
//     drives it with thousands of simulated nodes.
//
// # The shell
//
// The goroutines around the core are thin:
//
//   - The pool has one lane per kind of capacity, each a queue and its
//     goroutines: Config.Executors for native functions, Config.Workers
//     for functions of the Python worker pool (udf.Costed). A Python task
//     waits in its lane's queue, not on a native executor, and its lane
//     runs as many tasks as there are workers, so it finds a worker at
//     once. Close waits for every goroutine of both lanes.
//   - Scheduler.Run drives one call: a reader goroutine pulls input batches
//     (only while the call's window has room, which is the backpressure on
//     the input stream), the calling goroutine owns the Core, asks
//     placement, submits tasks and writes output batches. When the call's
//     context ends (the client went away, a deadline passed), queued tasks
//     are skipped and Run waits for the running ones before it returns, so
//     no Arrow memory outlives it.
//   - Groups (group.go): on a node without peers, once a grouping
//     function's (udf.Grouped) cost is measured, consecutive tasks of a
//     batch worth up to GroupTime (1 ms) go to a worker as one job
//     (GroupSize; at least two groups per worker). Each task of a group
//     still gets one result: a task that failed in its group is decided
//     as a task whose first attempt failed, and a group that failed whole
//     runs its tasks again alone.
//   - Each task applies Decide to its evaluations. A function that
//     measures its work (udf.Costed.EvalWork) reports each task to its
//     estimator, one per function ID shared by all calls (Scheduler.Cost
//     reads it); the udf package keeps no estimate.
//   - Spillback (spill.go, remote.go): a task placed on a peer skips the
//     lane's queue and runs through Config.Remote on a goroutine of its
//     own, at most PeerLimit per slot of the peer at once (beyond that it
//     runs here). Its result enters the call's inbox like a local one, so
//     the call's Core still takes exactly one result per task. A peer that
//     refuses the task (ErrPeerRefused) or is lost has it run here; a lost
//     peer counts against the call's Retries. The function's own failure
//     on the peer (PeerFuncError) fails the call as it would here. A call
//     that a peer spilled here (CallOptions.Spilled) never forwards its
//     tasks; it is refused with ErrSpillBusy when its lane's queue holds
//     Config.SpillBacklog tasks.
//   - Room (wake.go): a task with no room here or on a peer is held by its
//     call (Stats.HeldTasks) and placed again when a result comes back or
//     when the node hears that a peer has room (Scheduler.Wake). The
//     other side: Config.OnRoom tells the node that a lane was left with
//     a free slot and nothing queued, so that it tells busy peers.
//   - Bind types a call: a native kernel that refuses a dictionary-encoded
//     column binds it as its value type, and Run decodes it once per batch
//     before the batch is cut (dictionary.go); Python functions and those
//     that take any type get the columns as they came.
//     A udf.Nullary function takes batches without columns (EvalRows gets
//     the task's row count). CallOptions.TaskContext travels in the call's
//     context (udf.WithTaskContext) to every Python task.
//
// Memory: a call holds at most Window input batches and their results; the
// scheduler holds at most MaxCalls calls. Input batches are retained by Run
// and released once their output is written.
package scheduler
