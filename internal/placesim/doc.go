// Package placesim drives the scheduler's placement core (scheduler.Hybrid)
// with a simulated cluster: thousands of nodes, tasks of mixed costs
// arriving at a few origins (Spark's skew: a hot partition on one host),
// and load views that are as stale as gossip leaves them. It runs outside
// the node: its figures say whether the policy spreads work well, not how
// fast the node is.
//
// The model is a discrete-event simulation in virtual time. Each node has
// Slots slots. An origin holds the tasks that arrive at it and dispatches
// them in order whenever something changes (an arrival, a slot freed, a
// result back, a view refreshed): it asks Place with its own exact state
// and the peers' views of the last refresh; "here" runs the task when a
// slot is free and otherwise waits for one; a peer gets the task half a
// round trip later and runs it when it has a free slot, queues it when
// its queue is shorter than its slots, and otherwise refuses it, which the
// origin learns a round trip after sending it and places again, counting
// the peer full until its next report. A node left with a free slot and
// nothing queued sends a room report (its load then) to
// scheduler.RoomFan of the origins that had tasks waiting at the last
// refresh, as the node does; each takes it as that peer's newest report
// and places again (Config.NoRoom turns them off). The origin
// counts what it sent each peer until the result is back (Inflight), as the
// node does. Ideal makespan is the total work over the total slots (or the
// longest task, or the last arrival plus its task, when larger).
package placesim
