// Tests of streams held as bytes: what Stream refuses, and the fuzz target
// over its check of a file a client wrote.
package ipccheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/internal/shmtest"
)

// maxMessage is the largest message of the streams in these tests.
const maxMessage = 512 << 20

// patchField overwrites the little-endian integer of width w at field slot
// of the table reached from the root of the Message flatbuffer header by
// following the table fields in path.
func patchField(t testing.TB, header []byte, path []int, slot, w int, v uint64) {
	t.Helper()
	b := fbuf(header)
	tab, err := b.deref(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		var ok bool
		if tab, ok, err = b.table(tab, p); err != nil || !ok {
			t.Fatalf("table %d: %v", p, err)
		}
	}
	at, err := b.field(tab, slot)
	if err != nil || at == 0 {
		t.Fatalf("field %d: %v", slot, err)
	}
	switch w {
	case 4:
		binary.LittleEndian.PutUint32(header[at:], uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(header[at:], v)
	}
}

// frameOffsets returns where each message of stream b starts, and where
// its header starts.
func frameOffsets(t testing.TB, b []byte) (starts, headers []int) {
	t.Helper()
	f := NewFrames(b, maxMessage)
	for {
		off := f.Offset()
		if _, _, err := f.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				return starts, headers
			}
			t.Fatal(err)
		}
		starts = append(starts, off)
		headers = append(headers, off+8)
	}
}

// badStreams are streams Stream must refuse, by what is wrong.
func badStreams(t testing.TB) map[string][]byte {
	rec := shmtest.Batch(1, 1000)
	defer rec.Release()
	good := shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec})
	starts, headers := frameOffsets(t, good)
	last := len(starts) - 1 // the record batch (after the schema and a dictionary)
	hdrLen := int(binary.LittleEndian.Uint32(good[starts[last]+4:]))
	patched := func(f func(header []byte)) []byte {
		b := bytes.Clone(good)
		f(b[headers[last] : headers[last]+hdrLen])
		return b
	}
	garbage := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(garbage)
	return map[string][]byte{
		"truncated":         good[:len(good)/2],
		"truncated prefix":  good[:starts[1]+5],
		"garbage":           garbage,
		"no continuation":   append([]byte{1, 2, 3, 4}, good[4:]...),
		"huge header":       append(bytes.Clone(good[:starts[1]]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
		"negative header":   append(bytes.Clone(good[:starts[1]]), 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x80),
		"batch first":       append(bytes.Clone(good[:4]), good[starts[last]+4:]...),
		"schema only twice": append(bytes.Clone(good[:starts[1]]), good[:starts[1]]...),
		// Message.bodyLength (field 3) far past the file.
		"huge body": patched(func(h []byte) { patchField(t, h, nil, 3, 8, 1<<40) }),
		// RecordBatch.length (field 0 of the header, field 2) past the buffers.
		"rows past the buffers": patched(func(h []byte) { patchField(t, h, []int{2}, 0, 8, 1<<20) }),
		"negative rows":         patched(func(h []byte) { patchField(t, h, []int{2}, 0, 8, 1<<63) }),
	}
}

func TestStreamRejects(t *testing.T) {
	for what, b := range badStreams(t) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		if _, err := Stream(guarded(t, b), maxMessage, mem, 64<<20); err == nil || errors.Is(err, ErrFault) {
			t.Errorf("%s: %v, want refused without a fault", what, err)
		}
		mem.AssertSize(t, 0)
	}
	rec := shmtest.Batch(2, 100)
	defer rec.Release()
	good := shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec})
	if rows, err := Stream(good, maxMessage, memory.DefaultAllocator, 64<<20); err != nil || rows != 100 {
		t.Fatalf("a good stream: %d rows, %v", rows, err)
	}
	if _, err := Stream(good, 4<<10, memory.DefaultAllocator, 64<<20); err == nil {
		t.Fatal("a stream of messages larger than maxMessage was accepted")
	}
}

// guarded copies data into memory that ends at a page the process may not
// read: a read past the end of the bytes faults.
func guarded(t *testing.T, data []byte) []byte {
	ps := os.Getpagesize()
	pages := (len(data) + ps - 1) / ps
	m, err := syscall.Mmap(-1, 0, (pages+1)*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(m) })
	if err := syscall.Mprotect(m[pages*ps:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	b := m[pages*ps-len(data) : pages*ps : pages*ps]
	copy(b, data)
	return b
}

// int64Stream is one int64 column in batches of the given sizes.
func int64Stream(t testing.TB, sizes ...int) []byte {
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	var recs []arrow.RecordBatch
	for _, n := range sizes {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := 0; i < n; i++ {
			b.Append(int64(i))
		}
		col := b.NewArray()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{col}, int64(n)))
		col.Release()
		b.Release()
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	return shmtest.Stream(t, schema, recs)
}

// FuzzAdoptFile: whatever a file holds, the check of it that object_adopt
// runs (Stream) fails cleanly or accepts a stream that DoGet can send
// (Each); it never reads past the file's bytes, never leaks Arrow memory,
// and never crashes the node.
func FuzzAdoptFile(f *testing.F) {
	rec := shmtest.Batch(1, 50)
	f.Add(shmtest.Stream(f, shmtest.Schema, []arrow.RecordBatch{rec}))
	rec.Release()
	f.Add(shmtest.Stream(f, shmtest.Schema, nil))
	f.Add(int64Stream(f, 3, 0, 5))
	for _, b := range badStreams(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		b := guarded(t, data)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		rows, err := Stream(b, 1<<20, mem, 8<<20)
		mem.AssertSize(t, 0)
		if errors.Is(err, ErrFault) {
			t.Fatalf("the check read outside the file's bytes: %v", err)
		}
		if err != nil {
			return
		}
		if rows < 0 {
			t.Fatalf("accepted with %d rows", rows)
		}
		if err := Each(b, 1<<20, func(_, _ []byte) error { return nil }); err != nil {
			t.Fatalf("accepted, then DoGet cannot send it: %v", err)
		}
	})
}
