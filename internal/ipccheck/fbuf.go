// A flatbuffer read with bounds checks: the IPC Message header as bytes.
package ipccheck

import (
	"encoding/binary"
	"fmt"
)

// fbuf is a flatbuffer read with bounds checks. Offsets to tables and
// vectors point forward, so walks over it end.
type fbuf []byte

func (b fbuf) u32(at uint64) (uint64, error) {
	if at+4 > uint64(len(b)) {
		return 0, fmt.Errorf("offset %d outside %d bytes", at, len(b))
	}
	return uint64(binary.LittleEndian.Uint32(b[at:])), nil
}

// deref follows the uoffset at at.
func (b fbuf) deref(at uint64) (uint64, error) {
	off, err := b.u32(at)
	if err != nil {
		return 0, err
	}
	if at+off+4 > uint64(len(b)) {
		return 0, fmt.Errorf("offset %d outside %d bytes", at+off, len(b))
	}
	return at + off, nil
}

// field returns the position of field slot of the table at tab, or 0 when
// the table does not have it.
func (b fbuf) field(tab uint64, slot int) (uint64, error) {
	so, err := b.u32(tab)
	if err != nil {
		return 0, err
	}
	vt := int64(tab) - int64(int32(so))
	if vt < 0 || vt+4 > int64(len(b)) {
		return 0, fmt.Errorf("vtable at %d outside %d bytes", vt, len(b))
	}
	// Present when its entry starts inside the vtable, as flatbuffers
	// decides; the entry itself may end past it.
	entry := 4 + 2*int64(slot)
	if entry >= int64(binary.LittleEndian.Uint16(b[vt:])) {
		return 0, nil
	}
	if vt+entry+2 > int64(len(b)) {
		return 0, fmt.Errorf("vtable entry at %d outside %d bytes", vt+entry, len(b))
	}
	off := uint64(binary.LittleEndian.Uint16(b[vt+entry:]))
	if off == 0 {
		return 0, nil
	}
	return tab + off, nil
}

func (b fbuf) fieldU8(tab uint64, slot int) (byte, error) {
	at, err := b.field(tab, slot)
	if err != nil || at == 0 {
		return 0, err
	}
	if at >= uint64(len(b)) {
		return 0, fmt.Errorf("offset %d outside %d bytes", at, len(b))
	}
	return b[at], nil
}

// fieldI64 reads the long at field slot of the table at tab; present
// reports whether the table has it.
func (b fbuf) fieldI64(tab uint64, slot int, what string) (v int64, present bool, err error) {
	at, err := b.field(tab, slot)
	if err != nil || at == 0 {
		return 0, false, err
	}
	if at+8 > uint64(len(b)) {
		return 0, false, fmt.Errorf("%s at %d outside %d bytes", what, at, len(b))
	}
	return int64(binary.LittleEndian.Uint64(b[at:])), true, nil
}

// table returns the table field slot points to, if present.
func (b fbuf) table(tab uint64, slot int) (uint64, bool, error) {
	at, err := b.field(tab, slot)
	if err != nil || at == 0 {
		return 0, false, err
	}
	t, err := b.deref(at)
	return t, err == nil, err
}

// vector returns where the elements of vector field slot start and how
// many there are, after checking that they lie in the buffer.
func (b fbuf) vector(tab uint64, slot int, elem uint64) (uint64, int, error) {
	at, err := b.field(tab, slot)
	if err != nil || at == 0 {
		return 0, 0, err
	}
	vec, err := b.deref(at)
	if err != nil {
		return 0, 0, err
	}
	n, _ := b.u32(vec) // deref checked the 4 bytes
	if start := vec + 4; start+n*elem > uint64(len(b)) {
		return 0, 0, fmt.Errorf("vector of %d elements outside %d bytes", n, len(b))
	}
	return vec + 4, int(n), nil
}

// Message kinds (Message.header_type, MessageHeader in Message.fbs).
const (
	kindSchema     = 1
	kindDictionary = 2
	kindBatch      = 3
)

// batch returns the RecordBatch table of a RecordBatch or DictionaryBatch
// message (a DictionaryBatch's data, field 1, is one); ok is false for
// other messages.
func (b fbuf) batch() (tab uint64, ok bool, err error) {
	msg, err := b.deref(0)
	if err != nil {
		return 0, false, err
	}
	kind, err := b.fieldU8(msg, 1)
	if err != nil || (kind != kindDictionary && kind != kindBatch) {
		return 0, false, err
	}
	if tab, ok, err = b.table(msg, 2); err != nil || !ok {
		return 0, false, err
	}
	if kind == kindDictionary {
		tab, ok, err = b.table(tab, 1)
	}
	return tab, ok, err
}
