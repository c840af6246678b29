// Package scheduler decides where and when a call's work runs.
//
// A call is a stream of input record batches for one function. For every
// input batch the scheduler cuts zero-copy slices of RowsPerTask rows (a
// task each), runs them on a bounded pool of executors shared by all calls,
// and re-sequences the results into exactly one output batch with the same
// number of rows, emitted in input order.
//
// The decisions live in plain functions and one state machine without
// clocks, goroutines or I/O: Split (how to cut a batch), TaskRows (the
// default task size) and Core (which batches may be admitted, which are
// complete and may be emitted, in order). They are tested from scenario
// files in testdata/. The goroutines around them are a thin shell:
//
//   - Pool owns the executor goroutines; Close waits for them.
//   - Scheduler.Run drives one call: a reader goroutine pulls input batches
//     (only while the call's window has room, which is the backpressure on
//     the input stream), the calling goroutine owns the Core, submits tasks
//     and writes output batches. When the call's context ends (the client
//     went away, a deadline passed), queued tasks are skipped and Run waits
//     for the running ones before it returns, so no Arrow memory outlives it.
//
// Memory: a call holds at most Window input batches and their results; the
// scheduler holds at most MaxCalls calls. Input batches are retained by Run
// and released once their output is written.
package scheduler
