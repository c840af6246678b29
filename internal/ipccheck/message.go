// Checks of one IPC message header: the counts and sizes arrow-go
// allocates by, before it reads them.
package ipccheck

import (
	"encoding/binary"
	"fmt"
)

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

// Checker checks the headers of one stream's messages, in order: a
// schema's view-typed fields decide what its batches must hold. The zero
// value is ready; one Checker serves one stream.
type Checker struct {
	// MaxBody is the most the compressed buffers of one message may
	// inflate to, in bytes.
	MaxBody int
	views   int // view-typed fields in the stream's schema
}

// Check checks the counts and sizes in the IPC Message flatbuffer header
// (Message.fbs, Schema.fbs) that arrow-go allocates by, and that the
// buffers of a batch lie in body. It reads nothing outside header and
// body.
func (c *Checker) Check(header, body []byte) error {
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
	case kindSchema:
		if err := b.checkMetadata(tab, 2, &budget); err != nil {
			return err
		}
		c.views = 0
		return b.checkFields(tab, 1, 1, &budget, &c.views)
	case kindDictionary: // its data is a RecordBatch
		if tab, ok, err = b.table(tab, 1); err != nil || !ok {
			return err
		}
		return b.checkRecordBatch(tab, body, c.MaxBody, c.views)
	case kindBatch:
		return b.checkRecordBatch(tab, body, c.MaxBody, c.views)
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

// checkRows refuses a RecordBatch message, or a DictionaryBatch, whose
// length (field 0 of the RecordBatch) is negative: arrow-go would count
// the rows from the columns, and a client would get the header as it is.
func (b fbuf) checkRows() error {
	tab, ok, err := b.batch()
	if err != nil || !ok {
		return err
	}
	n, _, err := b.fieldI64(tab, 0, "batch length")
	if err == nil && n < 0 {
		err = fmt.Errorf("a batch of %d rows", n)
	}
	return err
}

// bodyLength reads Message.bodyLength (field 3, a long) of the Message
// flatbuffer b.
func (b fbuf) bodyLength() (int64, error) {
	msg, err := b.deref(0)
	if err != nil {
		return 0, err
	}
	n, _, err := b.fieldI64(msg, 3, "body length")
	return n, err
}

// Compressed reports whether header is that of a RecordBatch or
// DictionaryBatch message whose body is compressed; false for anything
// else, a header it cannot read included.
func Compressed(header []byte) bool {
	b := fbuf(header)
	tab, ok, err := b.batch()
	if err != nil || !ok {
		return false
	}
	_, compressed, err := b.table(tab, 3)
	return err == nil && compressed
}
