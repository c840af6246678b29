// Package flight is Quiver's Arrow Flight service: a thin adapter between
// gRPC and the components below it. Each call decodes its request, hands
// it to the scheduler, the catalog or the object store, and encodes the
// answer; every error becomes a gRPC code in one place, status.go.
//
//   - DoExchange on descriptor PATH [name] calls a function (exchange.go):
//     the columns of each input batch are its arguments; exactly one output
//     batch comes back per input batch, in order. The output schema is sent
//     as soon as the input schema is read, so lockstep clients work
//     (writer.go).
//   - DoExchange on descriptor CMD "session" is a session (session.go): one
//     long-lived stream of many small requests (call, put, get, release),
//     each answered by request number as it finishes: how the task API
//     avoids a stream per task.
//   - GetFlightInfo and ListFlights are the catalog (catalog.go), in the
//     layout of the RisingWave and Databend external-UDF callers.
//   - DoAction (actions.go) serves protocol_version, health, cluster_status,
//     register and drop (register.go), fetch_function (peerfuncs.go), and
//     the object actions.
//   - Peers (peer.go, peerrun.go): PeerClient is the one piece of the
//     cluster that speaks Flight to other nodes. It keeps one connection
//     per peer, runs a spilled task as a DoExchange marked quiver-spilled
//     (the Run of scheduler.Remote), reads peers' cluster_status and
//     fetches functions. A spilled call here runs as one task or is
//     refused; a Python function it names by hash is fetched once from its
//     origin and kept out of the catalog (peerfuncs.go).
//   - Objects (objects.go): DoPut on descriptor PATH ["objects"] stores a
//     stream in the object store and answers its id; DoGet(ticket = id)
//     streams it back; object_release drops the reference DoPut took. The
//     store keeps those references (objectstore.Store.Publish) and checks
//     capacity; this package only reads and answers.
//   - Object pulls (pull.go, pullcopies.go, pullserve.go, peerget.go):
//     an id names its owner node (objectstore.ID.Owner). A DoGet or a
//     session get of an id another node owns, not published here, goes
//     through the Puller: the first reader pulls the object from the
//     owner (a DoGet marked quiver-pull, answered in chunks of about
//     PullChunkBytes, 5 MiB; concurrent readers share one pull by
//     singleflight) and it is kept as a copy in this node's store; every
//     later read asks the owner first (object_stat), so a copy is never
//     served once its owner released it or is lost (NOT_FOUND, as
//     ErrOwnerLost). Copies go least recently used first past
//     PullConfig.CopyBytes, and after PullConfig.CopyIdle unused.
//   - Shared memory (shm.go), for callers on the node's unix socket:
//     object_shm says where the store's directory is, object_adopt has the
//     store adopt a file a client wrote there, object_locate says which
//     file holds an object. The directory, the files and their checks are
//     the store's (objectstore.Config.ShmDir).
//
// The gRPC server uses the node's codec (codec.go): protobuf, except that
// the FlightData it sends carries its body buffer to gRPC without a
// protobuf copy and the FlightData it receives is parsed into one copy.
//
// Client input is never trusted: every IPC message header is checked by
// internal/ipccheck before arrow-go reads it, the reader of one call holds
// a bounded amount of memory, and every batch is validated before use
// (input.go, source.go). Call options travel as gRPC headers (headers.go),
// the caller's task context (quiver-task-context, a JSON object) among them.
//
// A Server is built from a Config (the object store, the worker pool, a
// recorder and TLS included) before it serves; it serves one gRPC server
// on any number of listeners (TCP and a unix socket at once). Shutdown
// drains calls in flight; the caller then closes what it passed in Config.
// With Config.Recorder set, the input batches of every call are also
// recorded (internal/record, quiver start --record). docs/protocol.md is
// the reference for client writers.
package flight
