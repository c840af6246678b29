// Objects adopted from files in the shared-memory directory: the checks
// of a file, its mapping, its release hook, and where an object's file is.
package objectstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/internal/ipccheck"
)

// shmFiles is the store's shared-memory directory and the files adopted
// from it: name -> id while the object's bytes are the mapped file, and
// the reverse.
type shmFiles struct {
	dir *shmDir // nil when the store has none

	mu    sync.Mutex
	names map[string]ID // adopted or being adopted ("" until stored)
	ids   map[ID]string

	mapped      atomic.Int64 // files mapped now
	mappedBytes atomic.Int64 // their bytes
	doubleFrees atomic.Int64 // release hooks called more than once: a store bug
}

// openShm opens the shared-memory directory in parent ("" for none). Where
// it cannot, the store serves without one, and says why.
func openShm(parent string, log *zap.Logger) *shmDir {
	if parent == "" {
		return nil
	}
	dir, err := openShmDir(parent)
	if err != nil {
		log.Warn("objects through shared memory are off; clients on this host use DoPut and DoGet", zap.Error(err))
		return nil
	}
	return dir
}

// ShmDir is the store's shared-memory directory, "" when it has none.
func (s *Store) ShmDir() string {
	if s.shm.dir == nil {
		return ""
	}
	return s.shm.dir.path
}

// Adopt stores the file name of the shared-memory directory, which holds
// an Arrow IPC stream whose every message fits in maxMessage bytes (less
// ipccheck.MessageSlack), as a stream object whose bytes are the file
// mapped read-only; it returns a handle holding one reference and the
// stream's rows. From then on the store owns the file: its release hook
// unmaps and deletes it. A file it refuses is deleted, unless it is a
// directory or another user's; the refusal wraps ErrInvalidObject,
// ErrOverCapacity, or ErrNoShm where the store has no directory.
func (s *Store) Adopt(ctx context.Context, name string, maxMessage int) (*Handle, int64, error) {
	f := &s.shm
	if f.dir == nil {
		return nil, 0, ErrNoShm
	}
	if err := checkShmName(name); err != nil {
		return nil, 0, err
	}
	if !f.reserve(name) {
		return nil, 0, fmt.Errorf("%w: file %q is adopted already", ErrInvalidObject, name)
	}
	m, rows, err := s.mapShmFile(name, maxMessage)
	if err != nil {
		f.forget(name)
		return nil, 0, err
	}
	f.mapped.Add(1)
	f.mappedBytes.Add(int64(len(m)))
	h, err := s.Put(ctx, Object{Stream: m, Free: f.releaser(name, m, s.log)})
	if err != nil {
		return nil, 0, err // the store called the release hook
	}
	f.stored(name, h.ID())
	return h, rows, nil
}

// Locate returns the name of the object's file in the shared-memory
// directory while its bytes are that file, else "" (put otherwise, or
// spilled and read back), and what it counts against the memory bound.
func (s *Store) Locate(id ID) (file string, size int64, err error) {
	h, err := s.Acquire(id)
	if err != nil {
		return "", 0, err
	}
	defer h.Release()
	return s.shm.locate(id), h.Size(), nil
}

// checkShmName accepts a bare file name: no directory, no '.' or '..'.
func checkShmName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: file %q: want the bare name of a file in the node's shared-memory directory", ErrInvalidObject, name)
	}
	return nil
}

// mapShmFile maps the file name read-only and checks that it holds an
// Arrow IPC stream; it returns the mapping and the stream's rows. A file
// it refuses is removed, unless it is a directory or another user's.
func (s *Store) mapShmFile(name string, maxMessage int) (m []byte, rows int64, err error) {
	path := filepath.Join(s.shm.dir.path, name)
	remove := true
	defer func() {
		if err != nil && remove {
			_ = os.Remove(path)
		}
	}()
	// O_NOFOLLOW: a symbolic link is refused; O_NONBLOCK: opening a FIFO
	// does not wait for a writer.
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT):
			remove = false
			return nil, 0, fmt.Errorf("%w: no file %q in the node's shared-memory directory", ErrInvalidObject, name)
		case errors.Is(err, syscall.ELOOP):
			return nil, 0, fmt.Errorf("%w: %q is a symbolic link", ErrInvalidObject, name)
		}
		return nil, 0, fmt.Errorf("%w: opening %q: %v", ErrInvalidObject, name, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, 0, fmt.Errorf("objectstore: adopting %q: %w", name, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
		remove = false
		return nil, 0, fmt.Errorf("%w: %q is a directory", ErrInvalidObject, name)
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, 0, fmt.Errorf("%w: %q is not a regular file", ErrInvalidObject, name)
	case int(st.Uid) != os.Geteuid():
		remove = false
		return nil, 0, fmt.Errorf("%w: %q belongs to uid %d, not to the node's user", ErrInvalidObject, name, st.Uid)
	case st.Nlink != 1:
		return nil, 0, fmt.Errorf("%w: %q has %d links", ErrInvalidObject, name, st.Nlink)
	case st.Size <= 0:
		return nil, 0, fmt.Errorf("%w: %q is empty", ErrInvalidObject, name)
	}
	limit := s.cfg.MemoryBytes
	if err := checkSize("", st.Size, limit); err != nil {
		return nil, 0, fmt.Errorf("file %q: %w", name, err)
	}
	m, err = syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, 0, fmt.Errorf("objectstore: mapping %q: %w", name, err)
	}
	rows, err = ipccheck.Stream(m, maxMessage, s.cfg.Mem, limit+int64(maxMessage))
	if err != nil {
		_ = syscall.Munmap(m)
		return nil, 0, fmt.Errorf("%w: %q: %v", ErrInvalidObject, name, err)
	}
	return m, rows, nil
}

// reserve claims name for one adoption; false if it is taken.
func (f *shmFiles) reserve(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.names[name]; ok {
		return false
	}
	if f.names == nil {
		f.names = make(map[string]ID)
		f.ids = make(map[ID]string)
	}
	f.names[name] = ""
	return true
}

// stored records that the object id is name, unless its release hook ran
// already (the object was spilled or freed at once).
func (f *shmFiles) stored(name string, id ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.names[name]; ok {
		f.names[name] = id
		f.ids[id] = name
	}
}

// unlocate drops the id of name: locate answers "" from now on, while the
// name stays taken.
func (f *shmFiles) unlocate(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id := f.names[name]; id != "" {
		delete(f.ids, id)
	}
}

// forget drops name and its id.
func (f *shmFiles) forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.names[name]; ok {
		delete(f.names, name)
		if id != "" {
			delete(f.ids, id)
		}
	}
}

// locate returns the file of id, or "".
func (f *shmFiles) locate(id ID) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[id]
}

// releaser returns the release hook of the mapping m of name: unmap it,
// delete the file, forget the name.
func (f *shmFiles) releaser(name string, m []byte, log *zap.Logger) func() {
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			f.doubleFrees.Add(1)
			log.Error("a shared-memory object's release hook was called twice", zap.String("file", name))
			return
		}
		f.unlocate(name) // first: no one is sent to a file about to go
		if err := syscall.Munmap(m); err != nil {
			log.Error("unmapping an object's file", zap.String("file", name), zap.Error(err))
		}
		f.mapped.Add(-1)
		f.mappedBytes.Add(-int64(len(m)))
		if err := os.Remove(filepath.Join(f.dir.path, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("removing an object's file", zap.String("file", name), zap.Error(err))
		}
		f.forget(name) // last: the name stays taken until the file is gone
	}
}
