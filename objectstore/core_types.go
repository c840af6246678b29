// The core's records: objects, spill files, requests for room, and the
// events and jobs it hands the shell.
package objectstore

import "container/list"

// objState is where an object's data is.
type objState uint8

const (
	stateMemory  objState = iota // in memory (and maybe on disk too)
	stateWriting                 // in memory; the spiller is writing its copy
	stateDisk                    // on disk only
	stateReading                 // on disk; room reserved; the spiller is reading it back
)

func (s objState) String() string {
	return [...]string{"mem", "writing", "disk", "reading"}[s]
}

// meta is the core's record of one object. The shell holds the data.
type meta struct {
	id      ID
	size    int64
	refs    int
	pins    int
	state   objState
	onDisk  bool          // seg holds a copy (objects never change, so a copy stays valid)
	seg     segment       // where the copy is, when onDisk
	lru     *list.Element // position in core.lru while in memory (memory, writing)
	restore *request      // the restore waiting or reading, if any
	freed   bool          // the last reference was released
}

// segment is one object's copy in a spill file.
type segment struct {
	file   int
	off, n int64 // n: compressed bytes
}

// reqState is how far a request for room went.
type reqState uint8

const (
	reqQueued  reqState = iota // waiting for room
	reqGranted                 // restores: room reserved, waiting for or being read
	reqDone                    // puts: admitted; restores: in memory, pinned for the readers
	reqFailed                  // err says why
)

// request asks for room: a put that did not fit at once, or the restore
// of an object on disk.
type request struct {
	seq     uint64
	put     bool
	id      ID
	size    int64
	m       *meta // restores: the object; puts: the object once admitted
	dup     bool  // puts: the id existed when admitted and got a reference instead
	pinners int   // restores: pins wanted by the readers waiting for it
	state   reqState
	err     error
}

// finished reports whether the request will not change any more.
func (r *request) finished() bool { return r.state == reqDone || r.state == reqFailed }

// fileMeta is the core's record of one spill file. The file takes new
// objects while it is core.cur.
type fileMeta struct {
	size int64 // bytes written, dead segments included
	live int   // objects whose copy is in it
}

// evKind is a consequence the shell applies (or a scenario prints).
type evKind uint8

const (
	evAdmit   evKind = iota // a queued put was admitted: r.m (r.dup: it existed)
	evRefuse                // a queued request failed: r.err
	evRestore               // a restore finished: r.m is in memory, pinned for r.pinners
	evSpill                 // m's copy is written: release its memory
	evKeep                  // m's copy is written, but m was pinned meanwhile: it stays
	evDrop                  // release m's memory: it has a copy on disk already
	evFree                  // m's last reference was released: release its memory, if held
	evDelete                // file has no live object (and no write in flight): delete it
)

type event struct {
	kind evKind
	m    *meta
	r    *request
	file int
}

// jobKind is the spiller's next I/O.
type jobKind uint8

const (
	jobNone  jobKind = iota
	jobWrite         // write m's copy at off in file
	jobRead          // read m back from m.seg
)

type job struct {
	kind jobKind
	m    *meta
	file int
	off  int64
}

// outcome of put and pin.
type outcome uint8

const (
	outDone outcome = iota // admitted, or pinned
	outDup                 // put: the id exists; a reference was added to it
	outWait                // queued: wait for the request to finish
)
