// Tests of what object_adopt refuses: malformed files, oversized
// messages, and the fuzz target over its check of a file.
package flight

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
	f := &ipcFrames{b: b, maxMessage: DefaultMaxMessageBytes}
	for {
		off := f.off
		if _, err := f.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return starts, headers
			}
			t.Fatal(err)
		}
		starts = append(starts, off)
		headers = append(headers, off+8)
	}
}

// badStreams are files object_adopt must refuse, by what is wrong.
func badStreams(t testing.TB) map[string][]byte {
	rec := shmBatch(1, 1000)
	defer rec.Release()
	good := streamBytes(t, shmSchema, []arrow.RecordBatch{rec})
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

func TestShmAdoptRejects(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{})
	c := client(t, n.unix)
	refused := func(name string, removed bool) {
		t.Helper()
		_, err := adopt(ctx, c, name)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("adopt %q: %v, want InvalidArgument", name, err)
		}
		if removed && exists(filepath.Join(n.dir, name)) {
			t.Fatalf("adopt %q: the refused file is still there", name)
		}
		if _, err := doAction(ctx, c, ActionHealth, nil); err != nil {
			t.Fatalf("the node after adopt %q: %v", name, err)
		}
	}
	for what, b := range badStreams(t) {
		name := strings.ReplaceAll(what, " ", "-")
		writeFile(t, filepath.Join(n.dir, name), b)
		refused(name, true)
	}
	rec := shmBatch(2, 100)
	defer rec.Release()
	good := streamBytes(t, shmSchema, []arrow.RecordBatch{rec})
	outside := filepath.Join(t.TempDir(), "outside")
	writeFile(t, outside, good)

	writeFile(t, filepath.Join(n.dir, "empty"), nil)
	refused("empty", true)
	if err := os.Symlink(outside, filepath.Join(n.dir, "link")); err != nil {
		t.Fatal(err)
	}
	refused("link", true)
	if !exists(outside) {
		t.Fatal("refusing a symbolic link removed its target")
	}
	if err := syscall.Mkfifo(filepath.Join(n.dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("fifo", true) // and does not wait for a writer
	if err := os.Mkdir(filepath.Join(n.dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	refused("sub", false)
	writeFile(t, filepath.Join(n.dir, "sub", "inner"), good)
	writeFile(t, filepath.Join(n.dir, "linked"), good)
	if err := os.Link(filepath.Join(n.dir, "linked"), filepath.Join(n.dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	refused("hardlink", true)
	for _, name := range []string{"", ".", "..", "sub/inner", "../outside", outside, "a\x00b", strings.Repeat("x", 256), "missing"} {
		refused(name, false)
	}
	if !exists(filepath.Join(n.dir, "sub", "inner")) {
		t.Fatal("a refused path removed a file in a subdirectory")
	}
	for _, body := range []string{"", "{", `{"file": 3}`, `["x"]`} {
		if _, err := doAction(ctx, c, ActionObjectAdopt, []byte(body)); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("adopt with body %q: %v, want InvalidArgument", body, err)
		}
	}
	os.RemoveAll(filepath.Join(n.dir, "sub"))
	os.Remove(filepath.Join(n.dir, "linked"))
	if st := n.store.Stats(); st.Objects != 0 {
		t.Fatalf("refused files became objects: %+v", st)
	}
	// A good file still goes in.
	writeFile(t, filepath.Join(n.dir, "good"), good)
	pr, err := adopt(ctx, c, "good")
	if err != nil || pr.Rows != 100 {
		t.Fatalf("adopt of a good file after the bad ones: %+v, %v", pr, err)
	}
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
}

func TestShmMessageTooLarge(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 64<<20, Config{MaxMessageBytes: 1 << 20})
	c := client(t, n.unix)
	rec := shmBatch(1, 100_000) // several MiB in one message
	defer rec.Release()
	writeFile(t, filepath.Join(n.dir, "big"), streamBytes(t, shmSchema, []arrow.RecordBatch{rec}))
	if _, err := adopt(ctx, c, "big"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "smaller batches") {
		t.Fatalf("a batch larger than the node's messages: %v, want InvalidArgument", err)
	}
	if exists(filepath.Join(n.dir, "big")) {
		t.Fatal("the refused file is still there")
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

// FuzzAdoptFile: whatever a file holds, object_adopt's check of it fails
// cleanly or accepts a stream DoGet can send; it never reads past the
// file's bytes, never leaks Arrow memory, and never crashes the node.
func FuzzAdoptFile(f *testing.F) {
	rec := shmBatch(1, 50)
	good := streamBytes(f, shmSchema, []arrow.RecordBatch{rec})
	rec.Release()
	f.Add(good)
	f.Add(streamBytes(f, shmSchema, nil))
	in := int64Batches(3, 0, 5)
	f.Add(streamBytes(f, int64Schema, in))
	releaseAll(in)
	for _, b := range badStreams(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		b := guarded(t, data)
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		rows, err := validateStream(b, 1<<20, mem, 8<<20)
		mem.AssertSize(t, 0)
		if errors.Is(err, errFault) {
			t.Fatalf("the check read outside the file's bytes: %v", err)
		}
		if err != nil {
			return
		}
		if rows < 0 {
			t.Fatalf("accepted with %d rows", rows)
		}
		frames := &ipcFrames{b: b, maxMessage: 1 << 20}
		for {
			_, err := frames.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("accepted, then DoGet cannot send it: %v", err)
			}
		}
	})
}
