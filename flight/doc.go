// Package flight is Quiver's Arrow Flight service: a thin adapter between
// gRPC and the scheduler.
//
//   - DoExchange on descriptor PATH [name] calls a function: the columns of
//     each input batch are its arguments; exactly one output batch comes back
//     per input batch, in order. The output schema is sent as soon as the
//     input schema is read, so lockstep clients work.
//   - GetFlightInfo and ListFlights are the catalog, in the layout of the
//     RisingWave and Databend external-UDF callers.
//   - DoAction serves protocol_version, health and cluster_status.
//   - DoPut on descriptor PATH ["objects"] stores a stream in the node's
//     object store and answers its id; DoGet(ticket = id) streams it back;
//     the object_release action drops the reference DoPut took (objects.go).
//     Clients on the node's host may instead hand over a file in the node's
//     shared-memory directory (object_adopt, object_locate; shm.go).
//   - DoExchange on descriptor CMD "session" is a session (session.go): one
//     long-lived stream of many small requests (call, put, get, release),
//     each answered by request number as it finishes: how the task API
//     avoids a stream per task.
//
// Call options travel as gRPC headers (headers.go). Every error is mapped to
// a gRPC code in one place, status.go. A Server serves one gRPC server on
// any number of listeners (TCP and a unix socket at once); Shutdown drains
// calls in flight. With Config.Recorder set, the input batches of every
// call are also recorded (internal/record, quiver start --record).
// docs/protocol.md is the reference for client writers.
package flight
