// Package loadtest drives a Flight UDF endpoint (a Quiver node or any other
// that speaks the DoExchange protocol of docs/protocol.md) and measures it:
// the engine of quiver loadtest.
//
// A run has Concurrency workers. Each holds one DoExchange stream and
// makes lockstep requests on it: write one batch, read its result. A
// request that fails is counted by its gRPC code and the stream is
// reopened for the next one (in a closed loop after a short backoff when
// failures repeat: 1 ms doubling to 100 ms).
//
// Input is a recording (package record; Config.Replay) or generated
// batches (Config.Generate, a Spec). Requests take the batches in turn.
//
// The decisions are plain values without clocks or goroutines, tested
// alone:
//
//   - Plan: which batch request k sends, when it is due (closed loop: when
//     a worker takes it; open loop: at k/Rate, or at a recording's pacing
//     scaled by a speed, see ReplayPacing), and whether it is measured
//     (due after the warmup, before the end).
//   - Tally: counts, errors by code and an HdrHistogram of latencies; one
//     per worker, merged at the end, and Fill computes the Report.
//   - ParseSpec and Spec.Generate: the generator.
//
// Run is the thin concurrent shell: it loads the input, starts the workers
// (sharing only an atomic request counter and progress counters), a
// watcher that prints progress and cancels streams still in flight Grace
// after the end, and merges the tallies. Open-loop latency is measured from
// the due time, so a target that falls behind shows its queueing as latency
// (coordinated omission corrected).
//
// docs/loadtest.md is the user's guide: flags, the report's fields, how to
// record and replay.
package loadtest
