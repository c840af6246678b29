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
// # Ids and owners
//
// With Config.Owner set (a tag from NewOwnerTag, drawn by a node each time
// it starts), the ids the store makes name it: "OWNER.HEX32"
// (NewOwnedID; ID.Owner reads the tag back). Other nodes of a cluster
// pull such an object from its owner and keep it here with PutCopy: an
// ordinary object, counted in Stats.PullsTotal and PulledBytesTotal and
// never published. Who pulls decides how long a copy lives (package
// flight's Puller checks with the owner before each use). The files:
// owner.go, copy.go.
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
// # Objects clients hold: publication
//
// A client that puts an object over the network holds it by id, not by
// handle. Publish keeps a handle's reference on the client's behalf and
// tells the client the id (if that answer fails, the reference is dropped:
// the client never learnt the id); Unpublish drops it when the client
// releases the id; AcquirePublished finds only objects still published.
// PublishBlob joins a blob's parts and publishes it under a given or new
// id. Collect gathers the batches of an object as they arrive and refuses
// them as soon as they outgrow the store, before the rest arrives. The
// store is the one place that compares an object's size with its memory.
//
// # Shared memory: adopted files
//
// With Config.ShmDir set, the store makes a private directory there
// (user-only, named quiver-UID-*, flock-ed while the store lives, so that
// the next store to start removes the directories of nodes that died) and
// removes it with its files on Close. Adopt takes a file a client on the
// host wrote there: it must be a regular file of the node's user with one
// link, holding an Arrow IPC stream that internal/ipccheck accepts; it is
// mapped read-only and becomes a stream object whose bytes are the file,
// and the file is the store's from then on. Locate says which file holds
// an object while its bytes are that file (not after a spill). A file
// Adopt refuses is deleted, unless it is a directory or another user's.
//
//	h, rows, err := store.Adopt(ctx, name, maxMessage) // ErrInvalidObject, ErrOverCapacity, ErrNoShm
//	file, size, err := store.Locate(h.ID())
//
// # Memory the store does not own: release hooks
//
// An object's bytes may be memory the store did not allocate, such as a
// file mapped from shared memory (Adopt, whose hook unmaps and deletes
// the file). Its
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
// Every method of Store and Handle is safe for concurrent use; a Collector
// belongs to one goroutine. Close stops the spiller and waits for it. The
// files: core*.go the state machine, store.go the shell, spiller.go its
// goroutine, spill.go the file format, publish.go, collect.go, adopt.go
// and shmdir.go what clients hold and send.
package objectstore
