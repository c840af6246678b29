// The spiller: the one goroutine that does spill I/O, writes and reads
// alike, one object at a time.
package objectstore

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"go.uber.org/zap"
)

// spiller is the one goroutine that does spill I/O: it asks the core for a
// job, does the I/O without the lock, and reports back. An object's bytes
// may be a mapped file that faults when read (another process shrank it):
// the fault is a panic here, and the write fails.
func (s *Store) spiller(sp *spillIO) {
	defer close(s.done)
	defer sp.close()
	debug.SetPanicOnFault(true)
	for {
		s.mu.Lock()
		if s.closed {
			s.unlock()
			return
		}
		j := s.core.next()
		s.apply() // what next admitted may be the object it chose to write: hold its data first
		var (
			obj  Object
			f    *os.File
			err  error
			seg  segment
			size int64
		)
		switch j.kind {
		case jobWrite:
			held, ok := s.held[j.m]
			if !ok {
				panic(fmt.Sprintf("objectstore: object %s chosen to spill has no data in memory", j.m.id))
			}
			obj = held.retain() // the store may free it while we write
			f, err = s.file(j.file)
		case jobRead:
			f, seg, size = s.files[j.file], j.m.seg, j.m.size
		}
		s.unlock()

		switch j.kind {
		case jobNone:
			select {
			case <-s.kick:
			case <-s.quit:
				return
			}
		case jobWrite:
			var n int64
			if err == nil {
				n, err = sp.write(f, j.off, obj)
			}
			if free := obj.release(); free != nil {
				free() // the object was freed while we wrote it
			}
			s.mu.Lock()
			if err != nil {
				s.log.Error("spilling an object failed; spilling only objects on disk already until the next request for room",
					zap.String("object", string(j.m.id)), zap.Error(err))
				s.core.writeFailed()
			} else {
				s.core.written(n)
			}
			s.apply()
			s.unlock()
		case jobRead:
			obj, err := sp.read(f, seg, size)
			s.mu.Lock()
			if err != nil {
				s.log.Error("reading an object back failed", zap.String("object", string(j.m.id)), zap.Error(err))
				s.core.readFailed(err)
			} else {
				s.held[j.m] = obj
				s.core.readDone()
			}
			s.apply()
			s.unlock()
		}
	}
}

// file returns spill file n, creating it on its first write.
func (s *Store) file(n int) (*os.File, error) {
	if f := s.files[n]; f != nil {
		return f, nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("spill-%06d.zst", n)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	s.files[n] = f
	return f, nil
}
