// Package objectstore holds a node's objects: Arrow data that tasks and
// clients share by id instead of sending it again.
//
// An object is a stream of record batches sharing one schema, the bytes of
// an Arrow IPC stream (StreamBytes: the store keeps them as they are), or a
// blob of bytes. It is immutable and addressed by an ID: a random one
// (Put), or one the caller derives from the content (PutWithID; putting an
// id that exists adds a reference to the existing object).
//
//	h, err := store.Put(ctx, objectstore.Batches(schema, recs))
//	defer h.Release()
//	obj, err := h.Pin(ctx) // in memory until Unpin, read back from disk if need be
//	defer h.Unpin()
//	for _, rec := range obj.Batches { ... }
//
// # Ownership
//
// Handles count references: Put and Acquire return a handle holding one,
// Retain adds one, Release drops one, and the object is freed with the
// last. The count belongs to the object; a count below zero (a double
// release, an unpin without a pin, a handle used after the last release)
// panics with a message naming the object. Put retains the batches it is
// given: the caller keeps and releases its own references. The store
// releases its references when it spills or frees an object, so the
// memory bound means physical memory only once callers release theirs.
// Data returned by Pin belongs to the store and is valid until Unpin.
//
// # Memory the store does not own: release hooks
//
// An object's bytes may be memory the store did not allocate, such as a
// file mapped from shared memory (the Flight layer's object_adopt). Its
// Object.Free is then the store's to call, exactly once, outside the lock,
// when the store lets go of that memory: the object is freed, spilled or
// dropped at Close, or the put fails or stores nothing. It is never called
// while the object is pinned (a pinned object is neither freed nor
// spilled; Close leaves one pinned then to its last Unpin), nor while the
// spiller is still writing the bytes to disk (an object freed meanwhile
// has its hook called at the end of the write). An object spilled comes back
// from disk as Go memory, with no hook. The spiller turns memory faults
// into panics and a failed write, so that a mapped file cut short by
// another process fails the spill rather than the node. The store accounts
// the bytes it holds: memory another process still maps after the hook ran
// (a client that mapped the same file keeps its pages until it unmaps
// them) is outside its bound.
//
// # Memory and spilling
//
// Config.MemoryBytes bounds the bytes held in memory by the store's own
// accounting (Object.Size: the Arrow buffers' lengths, or the length of
// the blob or stream bytes), and the bound is never exceeded:
// Stats.MemoryPeakBytes shows it. Past the high-water mark (80% by
// default) the least recently used objects that are not pinned are
// spilled to Config.SpillDir in the background: each is one zstd frame
// (Arrow IPC for batches, the bytes of a blob or a stream) appended to
// the current spill file, and a new file starts once it reaches
// Config.SpillFileBytes (64 MiB). A put that does not fit waits while
// objects are spilled, first come first served, and fails with
// ErrOverCapacity when it cannot fit even after every unpinned object has
// been spilled. Pin reads a spilled object back (which may spill others);
// it keeps its copy on disk, so spilling it again costs no write. A spill
// file is deleted when the last object in it is freed; Close removes them
// all.
//
// # Structure and concurrency
//
// The decisions (accounting, LRU order, admission, which object to spill,
// which file it goes to) live in core, a state machine without goroutines,
// clocks or I/O, tested from the scenario files in testdata/. The Store
// around it is a thin shell: one mutex guards the core and the objects'
// data; one spiller goroutine does all spill I/O, writes and reads alike,
// one object at a time, so spill I/O is bounded; callers that wait (a put
// for room, a pin for a read) wait on a channel, never under the lock.
// Every method of Store and Handle is safe for concurrent use. Close stops
// the spiller and waits for it.
package objectstore
