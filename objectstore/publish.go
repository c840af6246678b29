// Published objects: the references clients hold by id, taken when a put
// is answered and dropped when the client releases the id.
package objectstore

import (
	"context"
	"fmt"
	"sync"
)

// published holds the reference a client holds on each object it put, by
// id, until the client releases it, with the object's stamp in the
// generation table. The zero value is ready (and stamps nothing).
type published struct {
	mu   sync.Mutex
	m    map[ID]pubEntry
	gens *generations // nil: no table
}

type pubEntry struct {
	h  *Handle
	st Stamp
}

// Publish holds h's reference on behalf of a client until Unpublish of
// its id, then calls answer (nil: none) to tell the client the id. If
// answer fails, the client never learnt the id: the reference is dropped
// and answer's error returned. The reference is held before the answer, so
// that a release right after it finds it.
func (s *Store) Publish(h *Handle, answer func() error) error {
	p := &s.pub
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[ID]pubEntry)
	}
	if old, ok := p.m[h.ID()]; ok {
		p.gens.drop(old.st) // a client that read the old object must not keep it
	}
	p.m[h.ID()] = pubEntry{h: h, st: p.gens.take()}
	p.mu.Unlock()
	if answer == nil {
		return nil
	}
	if err := answer(); err != nil {
		if h := p.take(h.ID()); h != nil {
			h.Release()
		}
		return err
	}
	return nil
}

// Unpublish drops the reference a client held on id; the object is freed
// once no reader holds it either. An id not published (never, or released
// already) fails with ErrNotFound.
func (s *Store) Unpublish(id ID) error {
	h := s.pub.take(id)
	if h == nil {
		return fmt.Errorf("%w: %q: no object, or its reference was released already", ErrNotFound, string(id))
	}
	h.Release()
	return nil
}

// AcquirePublished is Acquire of an object published and not released:
// an object a reader still holds after its release is not found.
func (s *Store) AcquirePublished(id ID) (*Handle, error) {
	h, _, err := s.AcquireStamped(id)
	return h, err
}

// AcquireStamped is AcquirePublished that also returns the object's stamp
// (not OK when it has none), read while it was published: once it is
// released the stamp's slot no longer holds that generation.
func (s *Store) AcquireStamped(id ID) (*Handle, Stamp, error) {
	s.pub.mu.Lock()
	e, ok := s.pub.m[id]
	s.pub.mu.Unlock()
	if !ok {
		return nil, Stamp{}, fmt.Errorf("%w: %q", ErrNotFound, string(id))
	}
	h, err := s.Acquire(id)
	return h, e.st, err
}

// Published reports whether id is published (put by a client and not
// released).
func (s *Store) Published(id ID) bool { return s.pub.has(id) }

// PublishBlob stores the concatenation of parts as a blob under id (a new
// random id when empty) and publishes it without an answer; it returns the
// id and what the blob counts against the memory bound. An id published
// already fails with ErrExists; a blob larger than the store's memory with
// ErrOverCapacity, before its parts are joined.
func (s *Store) PublishBlob(ctx context.Context, id ID, parts ...[]byte) (ID, int64, error) {
	if id == "" {
		id = s.NewID()
	} else if s.pub.has(id) {
		return "", 0, fmt.Errorf("%w: %q", ErrExists, string(id))
	}
	var n int
	for _, p := range parts {
		n += len(p)
	}
	if err := checkSize(id, int64(n), s.cfg.MemoryBytes); err != nil {
		return "", 0, err
	}
	blob := make([]byte, 0, n)
	for _, p := range parts {
		blob = append(blob, p...)
	}
	h, err := s.PutWithID(ctx, id, Blob(blob))
	if err != nil {
		return "", 0, err
	}
	size := h.Size()
	return id, size, s.Publish(h, nil)
}

// has reports whether id is published.
func (p *published) has(id ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[id]
	return ok
}

// take removes and returns id's reference, or nil; the object's stamp
// ends first.
func (p *published) take(id ID) *Handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[id]
	if !ok {
		return nil
	}
	delete(p.m, id)
	p.gens.drop(e.st)
	return e.h
}
