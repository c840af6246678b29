// Named failures of the object store.
package objectstore

import "errors"

var (
	// ErrNotFound: no object has this id (never stored, or freed).
	ErrNotFound = errors.New("objectstore: object not found")
	// ErrOverCapacity: the object does not fit in memory even after spilling
	// every object that is not pinned; back off and retry.
	ErrOverCapacity = errors.New("objectstore: over capacity")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("objectstore: closed")
	// ErrInvalidObject: an object or id the store cannot take (batches of
	// another schema than the object's, an empty id, a file to adopt that
	// is not a valid Arrow IPC stream or not a plain file of the node's).
	ErrInvalidObject = errors.New("objectstore: invalid object")
	// ErrExists: an object is published under this id already.
	ErrExists = errors.New("objectstore: an object has this id already")
	// ErrNoShm: the store has no shared-memory directory to adopt files
	// from.
	ErrNoShm = errors.New("objectstore: no shared-memory directory")
)
