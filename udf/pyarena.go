// The shared-memory arena between the node and one Python worker
// (docs/worker-protocol.md, "Arena"): task arguments and results live in a
// memfd both sides map; only frame headers cross the socket.
package udf

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

const (
	// arenaInitial is the size of a new worker's arena.
	arenaInitial = 8 << 20
	// arenaMax caps an arena's growth; larger arguments travel in the
	// frame body, as without an arena.
	arenaMax = 1 << 30
	// arenaKeep: after a task that used less of the arena than an earlier
	// one, the pages above max(arenaKeep, what it used) go back to the
	// kernel, so one huge task does not pin its memory for the worker's life.
	arenaKeep = 64 << 20
	// arenaAlign aligns the worker's result after the arguments.
	arenaAlign = 64
)

// arena is one worker's shared memory: a sealed memfd (it can grow, never
// shrink, so no one can make a mapping fault) and the node's mapping of it.
// Only the goroutine that holds the worker touches it.
type arena struct {
	f    *os.File // the memfd; the worker gets it as fd 4
	mem  []byte   // the node's mapping, exactly as mmap returned it
	high int      // end of the bytes that may hold pages since the last trim
}

// newArena creates a memfd of arenaInitial bytes and maps it.
func newArena() (*arena, error) {
	fd, err := unix.MemfdCreate("quiver-arena", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("udf: arena: memfd_create: %w", err)
	}
	a := &arena{f: os.NewFile(uintptr(fd), "quiver-arena")}
	if err := unix.Ftruncate(fd, arenaInitial); err != nil {
		a.close()
		return nil, fmt.Errorf("udf: arena: ftruncate: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		a.close()
		return nil, fmt.Errorf("udf: arena: sealing: %w", err)
	}
	if a.mem, err = unix.Mmap(fd, 0, arenaInitial, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		a.close()
		return nil, fmt.Errorf("udf: arena: mmap: %w", err)
	}
	return a, nil
}

// size is the length of the mapping, the arena_size the worker is told.
func (a *arena) size() int { return len(a.mem) }

// fit makes the arena hold need bytes of arguments and, where it can, as
// many again for the result after them: when it is smaller than twice need
// it grows the file to the next power of two of that, up to arenaMax, and
// remaps. It reports whether need fits; the contents stay.
func (a *arena) fit(need int) bool {
	if need > arenaMax {
		return false
	}
	if 2*need <= len(a.mem) || len(a.mem) == arenaMax {
		return need <= len(a.mem)
	}
	size := arenaInitial
	for size < 2*need && size < arenaMax {
		size *= 2
	}
	size = min(size, arenaMax)
	fd := int(a.f.Fd())
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return need <= len(a.mem)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return need <= len(a.mem)
	}
	_ = unix.Munmap(a.mem)
	a.mem = mem
	return true
}

// span is the arena bytes [off, off+n) a worker named, or ErrProtocol when
// the range is not inside the mapping.
func (a *arena) span(r []uint64) ([]byte, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: an arena range from a worker without an arena", ErrProtocol)
	}
	if len(r) != 2 {
		return nil, fmt.Errorf("%w: arena range %v is not [offset, length]", ErrProtocol, r)
	}
	off, n, size := r[0], r[1], uint64(len(a.mem))
	if off > size || n > size-off {
		return nil, fmt.Errorf("%w: arena range [%d, %d) outside the arena of %d bytes", ErrProtocol, off, off+n, size)
	}
	return a.mem[off : off+n : off+n], nil
}

// used notes that [0, end) may now hold pages.
func (a *arena) used(end int) { a.high = max(a.high, end) }

// trim returns to the kernel the pages above max(arenaKeep, used), where used
// is how much of the arena the last task needed. The caller makes sure the
// worker holds nothing there (no pinned arguments).
func (a *arena) trim(used int) {
	from := max(arenaKeep, (used+pageSize-1)/pageSize*pageSize)
	if a.high <= from {
		return
	}
	if err := unix.Fallocate(int(a.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(from), int64(a.high-from)); err == nil {
		a.high = from
	}
}

var pageSize = os.Getpagesize()

// close unmaps the arena and closes the memfd; the worker's mapping, if
// the process still lives, is its own.
func (a *arena) close() {
	if a.mem != nil {
		_ = unix.Munmap(a.mem)
		a.mem = nil
	}
	_ = a.f.Close()
}

// arenaWriter writes an IPC stream into the arena from offset 0. When the
// stream outgrows the mapping it moves what it has to a buffer and goes on
// there (the caller then grows the arena, or sends the bytes in the body).
type arenaWriter struct {
	mem   []byte
	n     int
	spill *bytes.Buffer
}

func (w *arenaWriter) Write(p []byte) (int, error) {
	if w.spill == nil {
		if len(p) <= len(w.mem)-w.n {
			w.n += copy(w.mem[w.n:], p)
			return len(p), nil
		}
		w.spill = bytes.NewBuffer(make([]byte, 0, 2*(w.n+len(p))))
		w.spill.Write(w.mem[:w.n])
	}
	return w.spill.Write(p)
}

var _ io.Writer = (*arenaWriter)(nil)
