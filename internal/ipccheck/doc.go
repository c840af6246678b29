// Package ipccheck checks Arrow IPC input from outside the node before
// arrow-go parses it, so that malformed bytes fail their call instead of
// crashing the node: arrow-go's reader allocates by counts in message
// headers and trusts buffer offsets, and running out of memory or reading
// past a mapped file is a crash, not a panic that recover catches.
//
// What it offers, from the message up:
//
//   - Checker checks one message header (fields, nesting, metadata,
//     buffers against the body, variadic counts, what compressed buffers
//     inflate to) before the reader sees it. One Checker per stream: a
//     schema tells it what its batches must hold. The Flight service runs
//     every message of DoExchange and DoPut through one.
//   - NewBudget wraps an allocator so that the reader of one stream never
//     holds more than a budget at once (ErrBudget).
//   - Batch validates a decoded record batch (lengths, buffers covering
//     rows, arrow-go's full validation) before anyone reads its values.
//   - For a stream held as bytes (a file a client wrote to shared memory
//     and the object store adopts): Frames reads its messages with every
//     length checked against the bytes; Stream decodes and validates it
//     whole, without a copy; Each hands its messages to a sender (DoGet of
//     an adopted object checks them again: the file may have changed).
//     These turn a memory fault (a mapped file cut short by another
//     process) into an error wrapping ErrFault.
//
// Everything here is a function of its input; a Checker, Frames or
// budget allocator belongs to one stream and one goroutine at a time
// (the allocator may be freed to from another).
package ipccheck
