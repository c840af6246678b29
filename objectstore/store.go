// The store: the core under one lock, the objects' data, and the spiller.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"go.uber.org/zap"
)

// Store holds objects in memory up to a bound and spills the rest to disk.
// Its methods and its handles' are safe for concurrent use.
type Store struct {
	cfg Config
	log *zap.Logger
	dir string // this store's private spill directory

	mu     sync.Mutex
	core   *core
	held   map[*meta]Object           // data of the objects in memory (retained)
	puts   map[*request]Object        // data of puts waiting for room (retained)
	waits  map[*request]chan struct{} // closed when the request finishes
	files  map[int]*os.File           // open spill files
	closed bool
	frees  []func()         // release hooks due, called by unlock once the lock is let go
	linger map[*meta]Object // after Close: pinned objects with a hook, until their last Unpin

	shm shmFiles   // the shared-memory directory and the files adopted from it (adopt.go)
	pub published  // the references clients hold by id (publish.go)
	cp  copyCounts // copies of other nodes' objects (copy.go)

	kick chan struct{} // wakes the spiller; capacity 1
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the spiller has returned
}

// New starts a store and its spiller goroutine; Close stops it.
func New(cfg Config, log *zap.Logger) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.SpillDir, 0o700); err != nil {
		return nil, fmt.Errorf("objectstore: spill directory: %w", err)
	}
	dir, err := os.MkdirTemp(cfg.SpillDir, "objects-")
	if err != nil {
		return nil, fmt.Errorf("objectstore: spill directory: %w", err)
	}
	sp, err := newSpillIO(cfg.Mem)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	s := &Store{
		cfg: cfg, log: log, dir: dir,
		core:  newCore(cfg.MemoryBytes, cfg.highWaterBytes(), cfg.SpillFileBytes),
		held:  make(map[*meta]Object),
		puts:  make(map[*request]Object),
		waits: make(map[*request]chan struct{}),
		files: make(map[int]*os.File),
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	s.shm.dir = openShm(cfg.ShmDir, log)
	if s.pub.gens, err = newGenerations(); err != nil {
		log.Warn("published objects get no stamps: clients on this host ask the node for every get", zap.Error(err))
	}
	go s.spiller(sp)
	return s, nil
}

// Limit is the memory bound in bytes (Config.MemoryBytes).
func (s *Store) Limit() int64 { return s.cfg.MemoryBytes }

// Dir is the store's private spill directory, inside Config.SpillDir.
func (s *Store) Dir() string { return s.dir }

// Put stores obj under a new random id and returns a handle holding one
// reference. It waits while the spiller makes room, until ctx ends; it
// fails with ErrOverCapacity if obj cannot fit even after every unpinned
// object is spilled. The store retains obj's batches; the caller keeps its
// own references.
func (s *Store) Put(ctx context.Context, obj Object) (*Handle, error) {
	return s.PutWithID(ctx, s.NewID(), obj)
}

// PutWithID is Put under an id the caller chose, for content addressing:
// if an object has this id already, the handle is a new reference to it
// and obj is not stored (same id, same content). Either way, and when the
// put fails, obj.Free is the store's to call (see Object.Free).
func (s *Store) PutWithID(ctx context.Context, id ID, obj Object) (*Handle, error) {
	free := obj.Free
	fail := func(err error) (*Handle, error) {
		if free != nil {
			free()
		}
		return nil, err
	}
	if err := id.check(); err != nil {
		return fail(err)
	}
	if err := obj.check(); err != nil {
		return fail(err)
	}
	obj = obj.withHook()
	size := obj.Size()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fail(ErrClosed)
	}
	out, m, r, err := s.core.put(id, size)
	var ch chan struct{}
	switch {
	case err != nil:
	case out == outDone:
		s.held[m] = obj.retain()
	case out == outWait:
		s.puts[r] = obj.retain()
		ch = s.waitFor(r)
	}
	s.apply()
	s.unlock()
	if err != nil || out == outDup {
		if free != nil {
			free() // not stored: the store never held it
		}
	}
	if err != nil {
		return nil, err
	}
	if out == outWait {
		if err := s.wait(ctx, r, ch); err != nil {
			return nil, err
		}
		m = r.m
	}
	return &Handle{s: s, m: m}, nil
}

// Acquire returns a new handle holding one more reference to the object
// id names, or ErrNotFound.
func (s *Store) Acquire(id ID) (*Handle, error) {
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return nil, ErrClosed
	}
	m := s.core.lookup(id)
	if m == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, string(id))
	}
	s.core.retain(m)
	return &Handle{s: s, m: m}, nil
}

// Stats is a snapshot of the store's accounting.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := s.core.stats()
	s.mu.Unlock()
	st.PullsTotal, st.PulledBytesTotal = s.cp.pulls.Load(), s.cp.bytes.Load()
	st.ShmBytes = s.shm.mappedBytes.Load()
	return st
}

// Close stops the spiller, fails the puts and reads still waiting with
// ErrClosed, releases every object's memory, forgets what was published,
// and removes the spill files and the shared-memory directory.
// Handles become inert: Release does nothing, Pin fails, and Unpin does
// nothing but for a pinned object with a release hook (Object.Free),
// which is called at its last Unpin rather than under a reader. Data a
// reader got from Pin must not be used after Close, except that.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.quit)
	s.mu.Unlock()
	<-s.done
	s.mu.Lock()
	s.core.close()
	s.apply()
	for m, obj := range s.held {
		if obj.hook != nil && m.pins > 0 {
			if s.linger == nil {
				s.linger = make(map[*meta]Object)
			}
			s.linger[m] = obj
			continue
		}
		s.later(obj.release())
	}
	s.held = nil
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	s.unlock()
	s.pub.mu.Lock()
	s.pub.m = nil // their handles are inert now
	s.pub.gens.close()
	s.pub.gens = nil
	s.pub.mu.Unlock()
	err := os.RemoveAll(s.dir)
	if s.shm.dir != nil {
		// After the hooks above: they unmapped and deleted their files.
		err = errors.Join(err, s.shm.dir.close())
	}
	return err
}

// Handle is a counted reference to an object. Put and Acquire return a
// handle holding one reference; Retain adds one, Release drops one, and
// the object is freed with the last. The count is the object's: a handle
// released more times than it (and its copies) was retained panics.
type Handle struct {
	s *Store
	m *meta
}

// ID is the object's id.
func (h *Handle) ID() ID { return h.m.id }

// Size is what the object counts against the memory bound, in bytes.
func (h *Handle) Size() int64 { return h.m.size }

// Retain adds a reference.
func (h *Handle) Retain() {
	h.s.locked(func() { h.s.core.retain(h.m) })
}

// Release drops a reference; the last one frees the object (and its spill
// file, once no other object lives in it). Releasing more references than
// were held panics, naming the object.
func (h *Handle) Release() {
	h.s.locked(func() { h.s.core.release(h.m) })
}

// Pin keeps the object in memory until Unpin and returns its data, valid
// until then: a pinned object is never spilled. An object on disk is read
// back first, which waits for room (until ctx ends) and fails with
// ErrOverCapacity when pinned objects leave none. The caller must hold a
// reference while the object is pinned, and must not release the
// returned batches (Retain them to keep them past Unpin).
func (h *Handle) Pin(ctx context.Context) (Object, error) {
	s := h.s
	var (
		out outcome
		r   *request
		err error
		ch  chan struct{}
		obj Object
	)
	ok := s.locked(func() {
		out, r, err = s.core.pin(h.m)
		switch {
		case err != nil:
		case out == outDone:
			obj = s.held[h.m]
		default:
			ch = s.waitFor(r)
		}
	})
	if !ok {
		return Object{}, ErrClosed
	}
	if err != nil || out == outDone {
		return obj, err
	}
	if err := s.wait(ctx, r, ch); err != nil {
		return Object{}, err
	}
	if !s.locked(func() { obj = s.held[h.m] }) {
		return Object{}, ErrClosed
	}
	return obj, nil
}

// Unpin drops a pin; more unpins than pins panic, naming the object.
func (h *Handle) Unpin() {
	if h.s.locked(func() { h.s.core.unpin(h.m) }) {
		return
	}
	h.s.unpinClosed(h.m)
}

// unpinClosed is Unpin after Close: the last unpin of an object Close left
// pinned calls its release hook.
func (s *Store) unpinClosed(m *meta) {
	s.mu.Lock()
	defer s.unlock()
	obj, ok := s.linger[m]
	if !ok {
		return
	}
	s.core.unpin(m)
	if m.pins == 0 {
		delete(s.linger, m)
		s.later(obj.release())
	}
}

// locked runs f under the lock, then applies what the core decided. It
// does nothing and reports false once the store is closed. A panic in f
// (a count below zero) leaves the lock released.
func (s *Store) locked(f func()) bool {
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return false
	}
	f()
	s.apply()
	return true
}

// later queues a release hook (nil: none) for unlock to call.
func (s *Store) later(free func()) {
	if free != nil {
		s.frees = append(s.frees, free)
	}
}

// unlock lets go of the lock, then calls the release hooks queued under
// it: unmapping a file or deleting it may take a while, and needs no lock.
func (s *Store) unlock() {
	frees := s.frees
	s.frees = nil
	s.mu.Unlock()
	for _, f := range frees {
		f()
	}
}

// waitFor returns the channel closed when r finishes; a restore's readers
// share one.
func (s *Store) waitFor(r *request) chan struct{} {
	ch, ok := s.waits[r]
	if !ok {
		ch = make(chan struct{})
		s.waits[r] = ch
	}
	return ch
}

// wait waits until r finishes or ctx ends, and returns r's error. A waiter
// that gives up withdraws from r, unless r finished meanwhile.
func (s *Store) wait(ctx context.Context, r *request, ch chan struct{}) error {
	select {
	case <-ch:
		return r.err // written before ch was closed
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.unlock()
	if r.finished() {
		return r.err
	}
	s.core.cancel(r)
	s.apply()
	return ctx.Err()
}

// apply does what the core decided: hand data over, wake waiters, release
// memory (release hooks are queued for unlock), delete spill files, wake
// the spiller. Called under the lock.
func (s *Store) apply() {
	for _, e := range s.core.take() {
		switch e.kind {
		case evAdmit:
			obj := s.puts[e.r]
			delete(s.puts, e.r)
			if e.r.dup {
				s.later(obj.release())
			} else {
				s.held[e.m] = obj
			}
			s.finish(e.r)
		case evRefuse:
			if obj, ok := s.puts[e.r]; ok {
				s.later(obj.release())
				delete(s.puts, e.r)
			}
			s.finish(e.r)
		case evRestore:
			s.finish(e.r)
		case evSpill, evDrop, evFree:
			if obj, ok := s.held[e.m]; ok {
				s.later(obj.release())
				delete(s.held, e.m)
			}
		case evDelete:
			if f := s.files[e.file]; f != nil {
				delete(s.files, e.file)
				f.Close()
				if err := os.Remove(f.Name()); err != nil {
					s.log.Warn("removing a spill file", zap.Error(err))
				}
			}
		}
	}
	if s.core.wantsWork() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) finish(r *request) {
	if ch, ok := s.waits[r]; ok {
		close(ch)
		delete(s.waits, r)
	}
}
