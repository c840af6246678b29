// The deterministic core: accounting, LRU order, admission and the choice
// of what to spill. No goroutines, clocks or I/O.
package objectstore

import (
	"container/list"
	"errors"
	"fmt"
)

// errCanceled marks a request its waiter gave up.
var errCanceled = errors.New("objectstore: request canceled")

// core is the store's state without its data. Every method runs under the
// shell's lock, and leaves in events what the shell must do.
type core struct {
	bound, high, fileLimit int64

	used, peak int64 // bytes in memory: objects held plus restores' reservations
	objs       map[ID]*meta
	lru        *list.List // objects in memory, most recently used at the front
	queue      []*request // waiting for room, first come first served
	reads      []*request // granted restores not yet handed to the spiller
	busy       *job       // the spiller's job in flight
	writesOff  bool       // the last write failed: spill only what is on disk already
	files      map[int]*fileMeta
	cur        int // file taking writes, -1 for none
	nextFile   int
	seq        uint64
	events     []event

	spills, restores, drops int64
	// spillWritten and spillRead: compressed bytes written to and read
	// back from spill files.
	spillWritten, spillRead int64
}

func newCore(bound, high, fileLimit int64) *core {
	return &core{bound: bound, high: high, fileLimit: fileLimit, objs: make(map[ID]*meta),
		lru: list.New(), files: make(map[int]*fileMeta), cur: -1}
}

// take returns and clears the pending events.
func (c *core) take() []event {
	ev := c.events
	c.events = nil
	return ev
}

func (c *core) emit(e event) { c.events = append(c.events, e) }

// put adds an object of size bytes under id, with one reference.
func (c *core) put(id ID, size int64) (outcome, *meta, *request, error) {
	if m := c.objs[id]; m != nil {
		m.refs++
		return outDup, m, nil, nil
	}
	if err := checkSize(id, size, c.bound); err != nil {
		return 0, nil, nil, err
	}
	if len(c.queue) == 0 && c.used+size <= c.bound {
		return outDone, c.add(id, size), nil, nil
	}
	c.writesOff = false // a new demand tries the disk again
	if err := c.fits(id, size); err != nil {
		return 0, nil, nil, err
	}
	return outWait, nil, c.enqueue(&request{put: true, id: id, size: size}), nil
}

// checkSize is the store's one test of an object's size against its
// memory: an object larger than the memory never fits, however much is
// spilled, and fails with ErrOverCapacity. id names the object in the
// error when it has one.
func checkSize(id ID, size, bound int64) error {
	if size <= bound {
		return nil
	}
	what := "an object"
	if id != "" {
		what = "object " + string(id)
	}
	return fmt.Errorf("%w: %s of %d bytes is larger than the store's memory (%d bytes)", ErrOverCapacity, what, size, bound)
}

// lookup returns the live object id names, or nil.
func (c *core) lookup(id ID) *meta { return c.objs[id] }

// retain adds a reference to m.
func (c *core) retain(m *meta) {
	c.live(m, "retained")
	m.refs++
}

// release drops a reference to m and frees it with the last one.
func (c *core) release(m *meta) {
	if m.freed {
		panic(fmt.Sprintf("objectstore: object %s released more times than retained (reference count below zero)", m.id))
	}
	if m.refs == 1 && m.pins > 0 {
		panic(fmt.Sprintf("objectstore: object %s: last reference released while pinned (%d pins); unpin first", m.id, m.pins))
	}
	m.refs--
	if m.refs > 0 {
		return
	}
	c.free(m)
	c.settle()
}

// pin keeps m in memory until unpin. An object on disk is restored first:
// pin then returns outWait and the request whose evRestore pins it.
func (c *core) pin(m *meta) (outcome, *request, error) {
	c.live(m, "pinned")
	switch m.state {
	case stateMemory, stateWriting:
		m.pins++
		c.lru.MoveToFront(m.lru)
		return outDone, nil, nil
	}
	if r := m.restore; r != nil {
		r.pinners++
		return outWait, r, nil
	}
	c.writesOff = false
	r := &request{id: m.id, size: m.size, m: m, pinners: 1}
	if len(c.queue) == 0 && c.used+m.size <= c.bound {
		c.seq++
		r.seq = c.seq
		m.restore = r
		c.grant(r)
		return outWait, r, nil
	}
	if err := c.fits(m.id, m.size); err != nil {
		return 0, nil, err
	}
	m.restore = c.enqueue(r)
	return outWait, r, nil
}

// unpin drops a pin of m.
func (c *core) unpin(m *meta) {
	c.live(m, "unpinned")
	if m.pins == 0 {
		panic(fmt.Sprintf("objectstore: object %s unpinned more times than pinned (pin count below zero)", m.id))
	}
	m.pins--
}

// cancel withdraws a waiter from r, which is not finished. A put leaves
// the queue; a restore leaves it when nobody else waits for it and it was
// not granted (a granted one completes with the pins still wanted).
func (c *core) cancel(r *request) {
	if r.finished() {
		return
	}
	if !r.put {
		if r.pinners--; r.pinners > 0 || r.state == reqGranted {
			return
		}
		r.m.restore = nil
	}
	c.unqueue(r)
	c.fail(r, errCanceled)
	c.settle()
}

// next returns the spiller's next job, applying first what needs no I/O:
// admissions, and dropping objects whose copy is on disk already. Restores
// come first (their readers wait and their room is reserved), then the
// least recently used object without a copy, one at a time, while memory
// is above the target: the high-water mark, or lower to make room for the
// first request in the queue.
func (c *core) next() job {
	if c.busy != nil {
		panic("objectstore: next with a job in flight")
	}
	for {
		if len(c.reads) > 0 {
			r := c.reads[0]
			c.reads = c.reads[1:]
			c.busy = &job{kind: jobRead, m: r.m, file: r.m.seg.file, off: r.m.seg.off}
			return *c.busy
		}
		victim, dropped := c.victims()
		changed := c.settle()
		if victim != nil {
			if c.cur < 0 {
				c.cur = c.nextFile
				c.nextFile++
				c.files[c.cur] = &fileMeta{}
			}
			c.busy = &job{kind: jobWrite, m: victim, file: c.cur, off: c.files[c.cur].size}
			return *c.busy
		}
		if !dropped && !changed {
			return job{}
		}
	}
}

// wantsWork reports whether next may have a job: the spiller is woken then.
func (c *core) wantsWork() bool {
	return c.busy == nil && (len(c.reads) > 0 || c.used > c.target())
}

// target is the memory the spiller brings the store down to.
func (c *core) target() int64 {
	t := c.high
	if len(c.queue) > 0 {
		if h := c.bound - c.queue[0].size; h < t {
			t = h
		}
	}
	return t
}

// victims drops, from the least recently used end, unpinned objects that
// have a copy on disk until memory reaches the target, and returns the
// first one that needs a write, marked writing.
func (c *core) victims() (write *meta, dropped bool) {
	target := c.target()
	for e := c.lru.Back(); e != nil && c.used > target; {
		m := e.Value.(*meta)
		e = e.Prev()
		if m.pins > 0 || m.state != stateMemory {
			continue
		}
		if m.onDisk {
			c.evict(m)
			c.drops++
			c.emit(event{kind: evDrop, m: m})
			dropped = true
			continue
		}
		if c.writesOff {
			continue
		}
		m.state = stateWriting
		return m, dropped
	}
	return nil, dropped
}

// written completes the write job: n compressed bytes at its offset.
func (c *core) written(n int64) {
	j := c.endJob(jobWrite)
	m, f := j.m, c.files[j.file]
	f.size += n
	c.spills++
	c.spillWritten += n
	if !m.freed {
		m.onDisk, m.seg = true, segment{file: j.file, off: j.off, n: n}
		f.live++
		if m.pins > 0 {
			m.state = stateMemory
			c.emit(event{kind: evKeep, m: m})
		} else {
			c.evict(m)
			c.emit(event{kind: evSpill, m: m})
		}
	}
	if f.size >= c.fileLimit {
		c.cur = -1 // full: the next write starts a new file
	}
	c.maybeDelete(j.file)
	c.settle()
}

// writeFailed completes the write job without a copy. Spilling then drops
// only objects with a copy, until a new request tries the disk again.
func (c *core) writeFailed() {
	j := c.endJob(jobWrite)
	if !j.m.freed {
		j.m.state = stateMemory
	}
	c.writesOff = true
	c.maybeDelete(j.file)
	c.settle()
}

// readDone completes the read job: the shell holds the data again.
func (c *core) readDone() {
	j := c.endJob(jobRead)
	m := j.m
	c.restores++
	c.spillRead += m.seg.n
	if m.freed {
		c.emit(event{kind: evDrop, m: m})
		return
	}
	r := m.restore
	m.restore = nil
	m.state = stateMemory
	m.lru = c.lru.PushFront(m)
	m.pins += r.pinners
	r.state = reqDone
	c.emit(event{kind: evRestore, m: m, r: r})
}

// readFailed completes the read job without data: its readers fail.
func (c *core) readFailed(err error) {
	j := c.endJob(jobRead)
	m := j.m
	if m.freed {
		return
	}
	c.used -= m.size
	m.state = stateDisk
	r := m.restore
	m.restore = nil
	c.fail(r, err)
	c.settle()
}

// close fails every request still waiting.
func (c *core) close() {
	for _, r := range append(c.queue, c.reads...) {
		if !r.put {
			r.m.restore = nil
		}
		c.fail(r, ErrClosed)
	}
	c.queue, c.reads = nil, nil
}

func (c *core) endJob(k jobKind) job {
	if c.busy == nil || c.busy.kind != k {
		panic("objectstore: completing a job that is not in flight")
	}
	j := *c.busy
	c.busy = nil
	return j
}

// settle admits queued requests, first come first served, while they fit,
// and refuses those that cannot fit even after spilling every unpinned
// object. It reports whether the queue changed.
func (c *core) settle() bool {
	changed := false
	for len(c.queue) > 0 {
		r := c.queue[0]
		if c.used+r.size <= c.bound {
			c.queue = c.queue[1:]
			c.grant(r)
		} else if err := c.fits(r.id, r.size); err != nil {
			c.queue = c.queue[1:]
			if !r.put {
				r.m.restore = nil
			}
			c.fail(r, err)
		} else {
			break
		}
		changed = true
	}
	return changed
}

// fits says whether size bytes could fit once every object that can leave
// memory has: those not pinned (with writes off, only those with a copy).
func (c *core) fits(id ID, size int64) error {
	var freeable int64
	for e := c.lru.Front(); e != nil; e = e.Next() {
		m := e.Value.(*meta)
		if m.pins == 0 && (m.onDisk || m.state == stateWriting || !c.writesOff) {
			freeable += m.size
		}
	}
	if stuck := c.used - freeable; size > c.bound-stuck {
		why := "pinned or being read back"
		if c.writesOff {
			why = "pinned, being read back, or not on disk while spill writes fail"
		}
		return fmt.Errorf("%w: object %s of %d bytes does not fit: %d of the store's %d bytes cannot leave memory (%s)",
			ErrOverCapacity, id, size, stuck, c.bound, why)
	}
	return nil
}

func (c *core) enqueue(r *request) *request {
	c.seq++
	r.seq = c.seq
	c.queue = append(c.queue, r)
	return r
}

func (c *core) unqueue(r *request) {
	for i, q := range c.queue {
		if q == r {
			c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
			return
		}
	}
}

// grant gives r its room.
func (c *core) grant(r *request) {
	if r.put {
		if m := c.objs[r.id]; m != nil {
			m.refs++
			r.m, r.dup = m, true
		} else {
			r.m = c.add(r.id, r.size)
		}
		r.state = reqDone
		c.emit(event{kind: evAdmit, m: r.m, r: r})
		return
	}
	r.m.state = stateReading
	c.charge(r.size)
	r.state = reqGranted
	c.reads = append(c.reads, r)
}

func (c *core) fail(r *request, err error) {
	r.state, r.err = reqFailed, err
	c.emit(event{kind: evRefuse, m: r.m, r: r})
}

// add makes a new object in memory with one reference.
func (c *core) add(id ID, size int64) *meta {
	m := &meta{id: id, size: size, refs: 1}
	m.lru = c.lru.PushFront(m)
	c.objs[id] = m
	c.charge(size)
	return m
}

// charge counts n more bytes in memory; the bound is an invariant.
func (c *core) charge(n int64) {
	c.used += n
	if c.used > c.bound {
		panic(fmt.Sprintf("objectstore: accounting at %d bytes, past the bound of %d", c.used, c.bound))
	}
	if c.used > c.peak {
		c.peak = c.used
	}
}

// evict takes m out of memory; its copy is on disk.
func (c *core) evict(m *meta) {
	c.lru.Remove(m.lru)
	m.lru = nil
	m.state = stateDisk
	c.used -= m.size
}

// free forgets m, whose last reference was released.
func (c *core) free(m *meta) {
	m.freed = true
	delete(c.objs, m.id)
	switch m.state {
	case stateMemory, stateWriting:
		c.lru.Remove(m.lru)
		m.lru = nil
		c.used -= m.size
	case stateReading:
		c.used -= m.size
		for i, r := range c.reads {
			if r == m.restore {
				c.reads = append(c.reads[:i:i], c.reads[i+1:]...)
				break
			}
		}
	}
	if r := m.restore; r != nil {
		c.unqueue(r)
		m.restore = nil
		c.fail(r, fmt.Errorf("%w: %s was freed", ErrNotFound, m.id))
	}
	c.emit(event{kind: evFree, m: m})
	if m.onDisk {
		c.files[m.seg.file].live--
		c.maybeDelete(m.seg.file)
	}
}

// maybeDelete deletes file n once no object lives in it, unless the
// spiller is writing to it.
func (c *core) maybeDelete(n int) {
	if c.files[n].live > 0 || (c.busy != nil && c.busy.kind == jobWrite && c.busy.file == n) {
		return
	}
	if c.cur == n {
		c.cur = -1
	}
	delete(c.files, n)
	c.emit(event{kind: evDelete, file: n})
}

// live panics if m was freed: a handle used after its last release.
func (c *core) live(m *meta, verb string) {
	if m.freed {
		panic(fmt.Sprintf("objectstore: object %s %s after its last reference was released", m.id, verb))
	}
}
