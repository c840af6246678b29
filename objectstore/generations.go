// Generations: a shared-memory table that lets a client on this host keep
// a small object it read and know, without asking, that it is still
// published.
package objectstore

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GenerationSlots is how many published objects the table stamps at once;
// objects published past it get no stamp (clients then ask every time).
const GenerationSlots = 1 << 16

// Stamp names a published object's slot in the generation table and the
// generation it was published at. It is valid while the slot still holds
// that generation: Unpublish bumps it before the reference is dropped.
// OK is false for an object without a slot.
type Stamp struct {
	Slot int
	Gen  uint64
	OK   bool
}

// generations is the table: one little-endian uint64 per slot in a memfd
// that clients map read-only (the lane hands them its descriptor). A slot
// is taken at publish (its generation bumped) and freed at unpublish (bumped
// again), so a stamp outlives neither its object nor a reuse of its slot.
// Its methods are called with the published table's lock held.
type generations struct {
	fd    int // read and write, the node's
	rofd  int // read-only, the one clients get
	mem   []byte
	words []uint64 // mem as words, stored atomically
	free  []int32  // free slots, taken from the end
}

// newGenerations makes the table; an error means the host has no memfd,
// and the store then stamps nothing.
func newGenerations() (*generations, error) {
	fd, err := unix.MemfdCreate("quiver-generations", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("generation table: %w", err)
	}
	size := GenerationSlots * 8
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("generation table: %w", err)
	}
	// Its size never changes: a client may map it without fearing SIGBUS.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("generation table: %w", err)
	}
	rofd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("generation table: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		unix.Close(rofd)
		return nil, fmt.Errorf("generation table: %w", err)
	}
	g := &generations{fd: fd, rofd: rofd, mem: mem, words: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), GenerationSlots)}
	g.free = make([]int32, GenerationSlots)
	for i := range g.free {
		g.free[i] = int32(GenerationSlots - 1 - i) // slot 0 is taken first
	}
	return g, nil
}

// take gives a slot and its new generation, or a stamp that is not OK
// when every slot is taken.
func (g *generations) take() Stamp {
	if g == nil || len(g.free) == 0 {
		return Stamp{}
	}
	slot := int(g.free[len(g.free)-1])
	g.free = g.free[:len(g.free)-1]
	return Stamp{Slot: slot, Gen: atomic.AddUint64(&g.words[slot], 1), OK: true}
}

// drop ends st: its slot's generation moves on and the slot is free again.
func (g *generations) drop(st Stamp) {
	if g == nil || !st.OK {
		return
	}
	atomic.AddUint64(&g.words[st.Slot], 1)
	g.free = append(g.free, int32(st.Slot))
}

// close unmaps and closes the table; clients that mapped it keep their
// mapping (their lane has ended by then, which tells them to stop trusting it).
func (g *generations) close() {
	if g == nil {
		return
	}
	unix.Munmap(g.mem)
	unix.Close(g.fd)
	unix.Close(g.rofd)
}

// GenerationFD is a read-only descriptor of the generation table, to hand
// to a client on this host, and its size in slots; -1 when the store has
// none. The store keeps it open until Close.
func (s *Store) GenerationFD() (int, int) {
	s.pub.mu.Lock()
	defer s.pub.mu.Unlock()
	if s.pub.gens == nil {
		return -1, 0
	}
	return s.pub.gens.rofd, GenerationSlots
}
