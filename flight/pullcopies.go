// The copies a node keeps of objects other nodes own: least recently used
// out first past a bound in bytes, and dropped after an idle time.
package flight

import (
	"container/list"
	"sync"
	"time"

	"github.com/quiver-udf/quiver/objectstore"
)

// copies holds one reference to each copy it keeps. Its methods are safe
// for concurrent use; references are released outside its lock.
type copies struct {
	bound int64         // bytes of copies kept, at most (the last one added stays even past it)
	idle  time.Duration // a copy unused this long is dropped by sweep

	mu    sync.Mutex
	bytes int64
	lru   *list.List // of *copyEntry, most recently used first
	byID  map[objectstore.ID]*list.Element
}

type copyEntry struct {
	h    *objectstore.Handle
	used time.Time
}

func newCopies(bound int64, idle time.Duration) *copies {
	return &copies{bound: bound, idle: idle, lru: list.New(), byID: map[objectstore.ID]*list.Element{}}
}

// get returns a new reference to the copy of id, marked used at now, or
// nil.
func (c *copies) get(id objectstore.ID, now time.Time) *objectstore.Handle {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byID[id]
	if !ok {
		return nil
	}
	ce := e.Value.(*copyEntry)
	ce.used = now
	c.lru.MoveToFront(e)
	ce.h.Retain()
	return ce.h
}

// add keeps h's reference as the copy of its object (if one is kept
// already, h's reference is dropped) and drops the least recently used
// copies past the bound.
func (c *copies) add(h *objectstore.Handle, now time.Time) {
	var out []*objectstore.Handle
	c.mu.Lock()
	if _, ok := c.byID[h.ID()]; ok {
		out = append(out, h)
	} else {
		c.byID[h.ID()] = c.lru.PushFront(&copyEntry{h: h, used: now})
		c.bytes += h.Size()
	}
	for c.bytes > c.bound && c.lru.Len() > 1 {
		out = append(out, c.remove(c.lru.Back()))
	}
	c.mu.Unlock()
	releaseHandles(out)
}

// drop forgets the copy of id, if one is kept.
func (c *copies) drop(id objectstore.ID) {
	var out []*objectstore.Handle
	c.mu.Lock()
	if e, ok := c.byID[id]; ok {
		out = append(out, c.remove(e))
	}
	c.mu.Unlock()
	releaseHandles(out)
}

// sweep drops the copies unused since before now less the idle time; with
// all, every copy.
func (c *copies) sweep(now time.Time, all bool) {
	var out []*objectstore.Handle
	c.mu.Lock()
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		if all || now.Sub(e.Value.(*copyEntry).used) >= c.idle {
			out = append(out, c.remove(e))
		}
		e = prev
	}
	c.mu.Unlock()
	releaseHandles(out)
}

// len is the number of copies kept.
func (c *copies) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// remove takes e out and returns its handle, to release. Under the lock.
func (c *copies) remove(e *list.Element) *objectstore.Handle {
	ce := c.lru.Remove(e).(*copyEntry)
	delete(c.byID, ce.h.ID())
	c.bytes -= ce.h.Size()
	return ce.h
}

func releaseHandles(hs []*objectstore.Handle) {
	for _, h := range hs {
		h.Release()
	}
}
