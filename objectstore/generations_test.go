// Tests of the generation table: a stamp holds while its object is
// published, and never again once it is released or its slot reused.
package objectstore

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStampsEndWithTheirObject(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	id, _, err := s.PublishBlob(ctx, "a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	h, st, err := s.AcquireStamped(id)
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	if !st.OK {
		t.Fatalf("a published object has no stamp: %+v", st)
	}
	// Read as a client reads it: mapped through the descriptor clients get.
	fd, slots := s.GenerationFD()
	if fd < 0 || slots != GenerationSlots {
		t.Fatalf("GenerationFD = %d, %d", fd, slots)
	}
	mem, err := unix.Mmap(fd, 0, slots*8, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	read := func(slot int) uint64 { return binary.LittleEndian.Uint64(mem[slot*8:]) }
	if read(st.Slot) != st.Gen {
		t.Fatalf("stamp %+v of a published object: the mapped slot holds %d", st, read(st.Slot))
	}
	// The descriptor clients get cannot write the table.
	if _, err := unix.Mmap(fd, 0, slots*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		t.Fatal("the clients' descriptor maps writable")
	}

	if err := s.Unpublish(id); err != nil {
		t.Fatal(err)
	}
	if read(st.Slot) == st.Gen {
		t.Fatal("the stamp still holds after its object was released")
	}
	// The same id published again, likely in the same slot: a new generation.
	if _, _, err := s.PublishBlob(ctx, "a", []byte("two")); err != nil {
		t.Fatal(err)
	}
	h, st2, err := s.AcquireStamped("a")
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	if !st2.OK || st2.Gen == st.Gen && st2.Slot == st.Slot {
		t.Fatalf("the republished object's stamp %+v equals the released one's %+v", st2, st)
	}
	if read(st.Slot) == st.Gen {
		t.Fatal("the released stamp holds again")
	}
	if _, _, err := s.AcquireStamped("missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AcquireStamped of an unknown id: %v, want ErrNotFound", err)
	}
}

func TestStampsRunOut(t *testing.T) {
	g, err := newGenerations()
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	seen := make(map[int]bool)
	var last Stamp
	for i := 0; i < GenerationSlots; i++ {
		last = g.take()
		if !last.OK || seen[last.Slot] {
			t.Fatalf("take %d: %+v (slot seen before: %v)", i, last, seen[last.Slot])
		}
		seen[last.Slot] = true
	}
	if st := g.take(); st.OK {
		t.Fatalf("a full table gave %+v", st)
	}
	g.drop(last)
	if st := g.take(); !st.OK || st.Slot != last.Slot || st.Gen == last.Gen {
		t.Fatalf("after a drop: %+v, want slot %d at a new generation", st, last.Slot)
	}
}
