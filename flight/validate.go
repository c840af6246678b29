// Structural checks of input messages and arrays, so that malformed input
// fails its call instead of crashing the node or a kernel.
package flight

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/status"
)

// validateBatch checks every column of rec.
func validateBatch(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %d has %d rows, the batch %d", i, col.Len(), rec.NumRows())
		}
		if err := validateData(col.Data()); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, col.DataType(), err)
		}
	}
	return nil
}

// validateData checks that the buffers of d cover its rows, recursively,
// then runs the array's own full validation where it has one.
func validateData(d arrow.ArrayData) error {
	if d.Len() < 0 || d.Offset() < 0 {
		return fmt.Errorf("negative length or offset")
	}
	end := int64(d.Offset()) + int64(d.Len())
	bufs := d.Buffers()
	if len(bufs) > 0 && bufs[0] != nil && d.NullN() != 0 && int64(bufs[0].Len())*8 < end {
		return fmt.Errorf("validity bitmap of %d bytes for %d rows", bufs[0].Len(), end)
	}
	if fw, ok := d.DataType().(arrow.FixedWidthDataType); ok && len(bufs) > 1 && d.DataType().ID() != arrow.DICTIONARY {
		need := (end*int64(fw.BitWidth()) + 7) / 8
		have := int64(0)
		if bufs[1] != nil {
			have = int64(bufs[1].Len())
		}
		if have < need {
			return fmt.Errorf("data buffer of %d bytes, %d needed", have, need)
		}
	}
	for i, c := range d.Children() {
		if err := validateData(c); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	arr := array.MakeFromData(d)
	defer arr.Release()
	if v, ok := arr.(interface{ ValidateFull() error }); ok {
		return v.ValidateFull()
	}
	if v, ok := arr.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// isStreamEnd reports whether err came from the transport (the client went
// away, the call was cancelled) rather than from the bytes it sent.
func isStreamEnd(err error) bool {
	_, ok := status.FromError(err)
	return ok
}

// Limits on an IPC message header, checked before arrow-go reads it. Its
// reader allocates slices sized by counts in the header (fields, children,
// metadata entries, variadic buffers) and by the uncompressed sizes a
// compressed body declares, before it reads the elements; a few bytes of
// garbage can ask for terabytes, and running out of memory is a crash, not
// a panic that recover catches. Nesting is bounded as arrow-go bounds it
// when it loads arrays.
const (
	maxSchemaEntries = 1 << 16 // fields at every depth plus metadata entries
	maxNesting       = 64
)

// checkedStream checks every message's header with checkMessage before the
// IPC reader sees it, and cuts the capacity of its byte slices to their
// length: arrow-go slices bodies up to their capacity.
type checkedStream struct {
	flight.DataStreamReader
	maxBody int // the most the bodies of one message may decompress to
	views   int // view-typed fields in the stream's schema
}

func (s *checkedStream) Recv() (*flight.FlightData, error) {
	fd, err := s.DataStreamReader.Recv()
	if err != nil || len(fd.DataHeader) == 0 {
		return fd, err
	}
	fd.DataHeader = fd.DataHeader[:len(fd.DataHeader):len(fd.DataHeader)]
	fd.DataBody = fd.DataBody[:len(fd.DataBody):len(fd.DataBody)]
	if err := checkMessage(fd.DataHeader, fd.DataBody, s.maxBody, &s.views); err != nil {
		return nil, fmt.Errorf("%w: IPC message header: %v", errMalformed, err)
	}
	return fd, nil
}

// budgetAllocator bounds the bytes the IPC reader of one call holds at
// once. The reader allocates only to inflate compressed buffers, at the
// size the body declares; checkMessage bounds the buffers a header lists,
// but arrow-go reads past the end of the list when a schema needs more, so
// an allocation past the budget panics here, inside the reader, which turns
// the panic into an error.
type budgetAllocator struct {
	memory.Allocator
	left atomic.Int64
}

func newBudgetAllocator(mem memory.Allocator, budget int64) *budgetAllocator {
	a := &budgetAllocator{Allocator: mem}
	a.left.Store(budget)
	return a
}

func (a *budgetAllocator) take(n int) {
	if a.left.Add(-int64(n)) < 0 {
		a.left.Add(int64(n))
		panic(fmt.Errorf("%w: the input inflates to more than the node holds for one call", errMalformed))
	}
}

func (a *budgetAllocator) Allocate(size int) []byte {
	a.take(size)
	return a.Allocator.Allocate(size)
}

func (a *budgetAllocator) Reallocate(size int, b []byte) []byte {
	a.take(size - len(b))
	return a.Allocator.Reallocate(size, b)
}

func (a *budgetAllocator) Free(b []byte) {
	a.left.Add(int64(len(b)))
	a.Allocator.Free(b)
}

// checkMessage checks the counts and sizes in an IPC Message flatbuffer
// (Message.fbs, Schema.fbs) that arrow-go allocates by. A schema sets
// *views; batches are checked against it.
func checkMessage(header, body []byte, maxBody int, views *int) error {
	b := fbuf(header)
	msg, err := b.deref(0)
	if err != nil {
		return err
	}
	budget := maxSchemaEntries
	if err := b.checkMetadata(msg, 4, &budget); err != nil {
		return err
	}
	kind, err := b.fieldU8(msg, 1)
	if err != nil {
		return err
	}
	tab, ok, err := b.table(msg, 2)
	if err != nil || !ok {
		return err
	}
	switch kind {
	case 1: // Schema
		if err := b.checkMetadata(tab, 2, &budget); err != nil {
			return err
		}
		*views = 0
		return b.checkFields(tab, 1, 1, &budget, views)
	case 2: // DictionaryBatch: its data is a RecordBatch
		if tab, ok, err = b.table(tab, 1); err != nil || !ok {
			return err
		}
		return b.checkRecordBatch(tab, body, maxBody, *views)
	case 3: // RecordBatch
		return b.checkRecordBatch(tab, body, maxBody, *views)
	}
	return nil
}

// checkFields checks a vector of Field tables and their children, and
// counts those of a view type (BinaryView, Utf8View) into *views.
func (b fbuf) checkFields(tab uint64, slot, depth int, budget, views *int) error {
	if depth > maxNesting {
		return fmt.Errorf("fields nested deeper than %d", maxNesting)
	}
	start, n, err := b.vector(tab, slot, 4)
	if err != nil {
		return err
	}
	if *budget -= n; *budget < 0 {
		return fmt.Errorf("more than %d fields and metadata entries", maxSchemaEntries)
	}
	for i := 0; i < n; i++ {
		f, err := b.deref(start + 4*uint64(i))
		if err != nil {
			return err
		}
		if err := b.checkMetadata(f, 6, budget); err != nil {
			return err
		}
		typ, err := b.fieldU8(f, 2)
		if err != nil {
			return err
		}
		if typ == 23 || typ == 24 {
			*views++
		}
		if err := b.checkFields(f, 5, depth+1, budget, views); err != nil {
			return err
		}
	}
	return nil
}

// checkMetadata checks the size of a custom_metadata vector.
func (b fbuf) checkMetadata(tab uint64, slot int, budget *int) error {
	_, n, err := b.vector(tab, slot, 4)
	if err != nil {
		return err
	}
	if *budget -= n; *budget < 0 {
		return fmt.Errorf("more than %d fields and metadata entries", maxSchemaEntries)
	}
	return nil
}

// checkRecordBatch checks that every buffer lies in the body, that
// variadic buffer counts do not exceed the buffers, and that compressed
// buffers do not inflate to more than maxBody bytes in all. arrow-go reads
// a variadic count for every view-typed array, past the end of the vector
// when it is short, so views counts are checked wherever they lie.
func (b fbuf) checkRecordBatch(tab uint64, body []byte, maxBody, views int) error {
	bufs, nbufs, err := b.vector(tab, 2, 16)
	if err != nil {
		return err
	}
	counts, n, err := b.vector(tab, 4, 8)
	if err != nil {
		return err
	}
	if counts != 0 { // absent, arrow-go reads every count as 0
		for i := uint64(0); i < uint64(max(n, views)); i++ {
			if counts+8*i+8 > uint64(len(b)) {
				return fmt.Errorf("variadic buffer count %d outside %d bytes", i, len(b))
			}
			if c := int64(binary.LittleEndian.Uint64(b[counts+8*i:])); c < 0 || c > int64(nbufs) {
				return fmt.Errorf("%d variadic buffers of %d buffers", c, nbufs)
			}
		}
	}
	_, compressed, err := b.table(tab, 3)
	if err != nil {
		return err
	}
	total := int64(0)
	for i := 0; i < nbufs; i++ {
		off := int64(binary.LittleEndian.Uint64(b[bufs+16*uint64(i):]))
		length := int64(binary.LittleEndian.Uint64(b[bufs+16*uint64(i)+8:]))
		if off < 0 || length < 0 || off > int64(len(body)) || length > int64(len(body))-off {
			return fmt.Errorf("buffer %d at [%d, +%d) outside a body of %d bytes", i, off, length, len(body))
		}
		if !compressed || length == 0 {
			continue
		}
		if length < 8 {
			return fmt.Errorf("compressed buffer %d of %d bytes has no length prefix", i, length)
		}
		size := int64(binary.LittleEndian.Uint64(body[off:]))
		if size == -1 {
			continue // stored uncompressed
		}
		if size < 0 || size > int64(maxBody)-total {
			return fmt.Errorf("compressed buffers inflate to more than %d bytes", maxBody)
		}
		total += size
	}
	return nil
}

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
