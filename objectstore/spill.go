// Spill files: each object one zstd frame appended to a shared file.
package objectstore

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"

	"github.com/quiver-udf/quiver/internal/arrowio"
)

// A segment is one zstd frame holding a kind byte, then the object: an
// Arrow IPC stream (schema, batches, end of stream), the blob's bytes, or
// the bytes of a stream held as bytes (read back as bytes too).
const (
	kindBatches byte = 'A'
	kindBlob    byte = 'B'
	kindStream  byte = 'S'
)

// spillIO encodes and decodes segments. Only the spiller goroutine uses
// it, one object at a time, so one encoder and one decoder serve.
type spillIO struct {
	mem memory.Allocator
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newSpillIO(mem memory.Allocator) (*spillIO, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		enc.Close()
		return nil, err
	}
	return &spillIO{mem: mem, enc: enc, dec: dec}, nil
}

func (sp *spillIO) close() {
	_ = sp.enc.Close()
	sp.dec.Close()
}

// write writes obj as one segment at off in f and returns its length. A
// fault reading obj's bytes (a mapped file cut short; the spiller turns
// faults into panics) fails the write.
func (sp *spillIO) write(f *os.File, off int64, obj Object) (n int64, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("objectstore: reading object bytes to spill them: %v", r)
		}
	}()
	cw := &arrowio.CountingWriter{W: io.NewOffsetWriter(f, off)}
	sp.enc.Reset(cw)
	err = writeObject(sp.enc, obj, sp.mem)
	if cerr := sp.enc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("objectstore: writing spill file %s: %w", f.Name(), err)
	}
	return cw.N, nil
}

func writeObject(w io.Writer, obj Object, mem memory.Allocator) error {
	if obj.IsBlob() || obj.IsStream() {
		kind, b := kindBlob, obj.Blob
		if obj.IsStream() {
			kind, b = kindStream, obj.Stream
		}
		if _, err := w.Write([]byte{kind}); err != nil {
			return err
		}
		_, err := w.Write(b)
		return err
	}
	if _, err := w.Write([]byte{kindBatches}); err != nil {
		return err
	}
	iw := ipc.NewWriter(w, ipc.WithSchema(obj.Schema), ipc.WithAllocator(mem))
	for _, rec := range obj.Batches {
		if err := iw.Write(rec); err != nil {
			_ = iw.Close()
			return err
		}
	}
	return iw.Close()
}

// read reads the segment seg of f back: an object of size bytes in memory.
// Its batches are allocated from sp.mem and owned by the caller.
func (sp *spillIO) read(f *os.File, seg segment, size int64) (Object, error) {
	obj, err := sp.readObject(io.NewSectionReader(f, seg.off, seg.n), size)
	if err != nil {
		return Object{}, fmt.Errorf("objectstore: reading spill file %s at %d: %w", f.Name(), seg.off, err)
	}
	return obj, nil
}

func (sp *spillIO) readObject(r io.Reader, size int64) (Object, error) {
	if err := sp.dec.Reset(r); err != nil {
		return Object{}, err
	}
	var kind [1]byte
	if _, err := io.ReadFull(sp.dec, kind[:]); err != nil {
		return Object{}, err
	}
	switch kind[0] {
	case kindBlob, kindStream:
		b := make([]byte, size)
		if _, err := io.ReadFull(sp.dec, b); err != nil {
			return Object{}, err
		}
		if kind[0] == kindStream {
			return StreamBytes(b), nil
		}
		return Blob(b), nil
	case kindBatches:
		rdr, err := ipc.NewReader(sp.dec, ipc.WithAllocator(sp.mem))
		if err != nil {
			return Object{}, err
		}
		defer rdr.Release()
		var recs []arrow.RecordBatch
		for rdr.Next() {
			rec := rdr.RecordBatch()
			rec.Retain()
			recs = append(recs, rec)
		}
		if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
			for _, rec := range recs {
				rec.Release()
			}
			return Object{}, err
		}
		return Batches(rdr.Schema(), recs), nil
	}
	return Object{}, fmt.Errorf("unknown segment kind %q", kind[0])
}
