// Tests of objects adopted from the shared-memory directory: the directory
// itself, what Adopt refuses, capacity, spilling, Close.
package objectstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/quiver-udf/quiver/internal/shmtest"
)

// maxMessage is the largest message of an adopted stream in these tests.
const maxMessage = 512 << 20

// openShmStore opens a store of bound bytes with a shared-memory
// directory; cleanup closes it and checks that no file is left mapped, no
// release hook ran twice, and the directory is gone.
func openShmStore(t *testing.T, bound int64) (*Store, string) {
	t.Helper()
	var s *Store
	// Registered first, so it runs after openStore's Close.
	t.Cleanup(func() {
		if s == nil {
			return
		}
		if m := s.shm.mapped.Load(); m != 0 {
			t.Errorf("%d files still mapped after Close", m)
		}
		if d := s.shm.doubleFrees.Load(); d != 0 {
			t.Errorf("%d release hooks called twice", d)
		}
		if shmtest.Exists(s.ShmDir()) {
			t.Errorf("the shared-memory directory is still there after Close")
		}
	})
	s, _ = openStore(t, Config{MemoryBytes: bound, ShmDir: t.TempDir()})
	if s.ShmDir() == "" {
		t.Fatal("no shared-memory directory")
	}
	return s, s.ShmDir()
}

// adoptStream writes recs as a stream to the file name and adopts it.
func adoptStream(t *testing.T, s *Store, name string, recs ...arrow.RecordBatch) (*Handle, error) {
	t.Helper()
	shmtest.WriteFile(t, filepath.Join(s.ShmDir(), name), shmtest.Stream(t, shmtest.Schema, recs))
	h, _, err := s.Adopt(testCtx(t), name, maxMessage)
	return h, err
}

func TestShmDir(t *testing.T) {
	parent := t.TempDir()
	uid := os.Geteuid()
	stale := filepath.Join(parent, fmt.Sprintf("quiver-%d-stale", uid))
	other := filepath.Join(parent, "quiver-other")
	for _, d := range []string{stale, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		shmtest.WriteFile(t, filepath.Join(d, "f"), []byte("x"))
	}
	a, err := openShmDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if shmtest.Exists(stale) {
		t.Fatal("the directory of a node that died is still there")
	}
	if !shmtest.Exists(other) {
		t.Fatal("a directory that is not a node's was removed")
	}
	st, err := os.Stat(a.path)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || !strings.HasPrefix(filepath.Base(a.path), fmt.Sprintf("quiver-%d-", uid)) {
		t.Fatalf("shared-memory directory %s: %v %v", a.path, st.Mode(), err)
	}
	b, err := openShmDir(parent) // a second node: a's directory is live
	if err != nil {
		t.Fatal(err)
	}
	if !shmtest.Exists(a.path) || a.path == b.path {
		t.Fatalf("a second node removed or took the first's directory")
	}
	shmtest.WriteFile(t, filepath.Join(a.path, "f"), []byte("x"))
	if err := a.close(); err != nil {
		t.Fatal(err)
	}
	if shmtest.Exists(a.path) {
		t.Fatal("the directory is still there after Close")
	}
	b.close()
	if _, err := openShmDir(filepath.Join(parent, "missing")); err == nil {
		t.Fatal("a directory in a missing parent")
	}
	// A store whose directory cannot be made serves without one.
	s, _ := openStore(t, Config{ShmDir: filepath.Join(parent, "missing")})
	if s.ShmDir() != "" {
		t.Fatalf("a store with a missing parent has directory %q", s.ShmDir())
	}
	if _, _, err := s.Adopt(testCtx(t), "x", maxMessage); !errors.Is(err, ErrNoShm) {
		t.Fatalf("Adopt without a directory: %v, want ErrNoShm", err)
	}
}

func TestAdoptLocateRelease(t *testing.T) {
	s, dir := openShmStore(t, 64<<20)
	recs := []arrow.RecordBatch{shmtest.Batch(1, 5000), shmtest.Batch(2, 0), shmtest.Batch(3, 20_000)}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	data := shmtest.Stream(t, shmtest.Schema, recs)
	shmtest.WriteFile(t, filepath.Join(dir, "put-1"), data)
	h, rows, err := s.Adopt(testCtx(t), "put-1", maxMessage)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 25_000 || h.Size() != int64(len(data)) {
		t.Fatalf("adopted %d rows of %d bytes, want 25000 of %d", rows, h.Size(), len(data))
	}
	if _, _, err := s.Adopt(testCtx(t), "put-1", maxMessage); !errors.Is(err, ErrInvalidObject) {
		t.Fatalf("adopting a file twice: %v, want ErrInvalidObject", err)
	}
	if file, size, err := s.Locate(h.ID()); err != nil || file != "put-1" || size != int64(len(data)) {
		t.Fatalf("Locate: %q %d %v", file, size, err)
	}
	id := h.ID()
	h.Release()
	if shmtest.Exists(filepath.Join(dir, "put-1")) {
		t.Fatal("the file is still there after the object's release")
	}
	if _, _, err := s.Locate(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Locate after release: %v, want ErrNotFound", err)
	}
}

func TestAdoptOverCapacity(t *testing.T) {
	ctx := testCtx(t)
	s, dir := openShmStore(t, 256<<10)
	big := shmtest.Batch(1, 40_000)
	defer big.Release()
	if _, err := adoptStream(t, s, "big", big); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("a file larger than the store: %v, want ErrOverCapacity", err)
	}
	if shmtest.Exists(filepath.Join(dir, "big")) {
		t.Fatal("the file larger than the store is still there")
	}
	// One that fits alone, but not beside a pinned object: the store
	// refuses it and its release hook removes it.
	half := shmtest.Batch(2, 3_500)
	defer half.Release()
	if n := len(shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{half})); n < 129<<10 || n > 192<<10 {
		t.Fatalf("the test wants a file of 129 to 192 KiB, has %d bytes", n)
	}
	a, err := adoptStream(t, s, "a", half)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := adoptStream(t, s, "c", half); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("a file that does not fit beside a pinned object: %v, want ErrOverCapacity", err)
	}
	if shmtest.Exists(filepath.Join(dir, "c")) {
		t.Fatal("the refused file is still there")
	}
	a.Unpin()
	a.Release()
}

// TestAdoptSpillAndClose: a spilled object's file goes; the object reads
// back from disk; Close removes the files left.
func TestAdoptSpillAndClose(t *testing.T) {
	ctx := testCtx(t)
	s, dir := openShmStore(t, 1<<20)
	recA, recB := shmtest.Batch(1, 14_000), shmtest.Batch(2, 14_000)
	defer recA.Release()
	defer recB.Release()
	dataA := shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{recA})
	if len(dataA) < 550<<10 || len(dataA) > 1<<20 {
		t.Fatalf("the test wants a file of 550 KiB to 1 MiB, has %d bytes", len(dataA))
	}
	a, err := adoptStream(t, s, "a", recA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := adoptStream(t, s, "b", recB) // waits while a is spilled
	if err != nil {
		t.Fatal(err)
	}
	if !shmtest.GoneSoon(filepath.Join(dir, "a"), hang) {
		t.Fatal("a spilled, its file is still there")
	}
	if file, _, err := s.Locate(a.ID()); err != nil || file != "" {
		t.Fatalf("Locate of a spilled object: %q, %v; want no file", file, err)
	}
	obj, err := a.Pin(ctx) // read back as Go memory; b spills
	if err != nil {
		t.Fatal(err)
	}
	if !obj.IsStream() || string(obj.Stream) != string(dataA) {
		t.Fatal("the object read back differs from its file")
	}
	a.Unpin()
	if file, _, err := s.Locate(a.ID()); err != nil || file != "" {
		t.Fatalf("Locate of an object read back: %q, %v; want no file", file, err)
	}
	a.Release()
	b.Release()
	if st := s.Stats(); st.SpillsTotal < 2 || st.Objects != 0 {
		t.Fatalf("store: %+v; want both spilled, then freed", st)
	}
	for _, name := range []string{"c", "d"} {
		small := shmtest.Batch(3, 1000)
		_, err := adoptStream(t, s, name, small)
		small.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if shmtest.Exists(dir) {
		t.Fatal("the directory is still there after Close")
	}
	if m := s.shm.mapped.Load(); m != 0 {
		t.Fatalf("%d files mapped after Close", m)
	}
}

// TestAdoptRejects: files that are not plain files of the node's user
// holding a valid stream are refused (ErrInvalidObject) and removed,
// except a directory or a name outside the directory.
func TestAdoptRejects(t *testing.T) {
	s, dir := openShmStore(t, 64<<20)
	refused := func(name string, removed bool) {
		t.Helper()
		if _, _, err := s.Adopt(testCtx(t), name, maxMessage); !errors.Is(err, ErrInvalidObject) {
			t.Fatalf("adopt %q: %v, want ErrInvalidObject", name, err)
		}
		if removed && shmtest.Exists(filepath.Join(dir, name)) {
			t.Fatalf("adopt %q: the refused file is still there", name)
		}
	}
	rec := shmtest.Batch(2, 100)
	defer rec.Release()
	good := shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec})
	outside := filepath.Join(t.TempDir(), "outside")
	shmtest.WriteFile(t, outside, good)

	shmtest.WriteFile(t, filepath.Join(dir, "truncated"), good[:len(good)/2])
	refused("truncated", true)
	shmtest.WriteFile(t, filepath.Join(dir, "empty"), nil)
	refused("empty", true)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	refused("link", true)
	if !shmtest.Exists(outside) {
		t.Fatal("refusing a symbolic link removed its target")
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("fifo", true) // and does not wait for a writer
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	refused("sub", false)
	shmtest.WriteFile(t, filepath.Join(dir, "sub", "inner"), good)
	shmtest.WriteFile(t, filepath.Join(dir, "linked"), good)
	if err := os.Link(filepath.Join(dir, "linked"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
	refused("hardlink", true)
	for _, name := range []string{"", ".", "..", "sub/inner", "../outside", outside, "a\x00b", strings.Repeat("x", 256), "missing"} {
		refused(name, false)
	}
	if !shmtest.Exists(filepath.Join(dir, "sub", "inner")) {
		t.Fatal("a refused path removed a file in a subdirectory")
	}
	os.RemoveAll(filepath.Join(dir, "sub"))
	os.Remove(filepath.Join(dir, "linked"))
	if st := s.Stats(); st.Objects != 0 {
		t.Fatalf("refused files became objects: %+v", st)
	}
	// A good file still goes in.
	shmtest.WriteFile(t, filepath.Join(dir, "good"), good)
	h, rows, err := s.Adopt(testCtx(t), "good", maxMessage)
	if err != nil || rows != 100 {
		t.Fatalf("adopt of a good file after the bad ones: %d rows, %v", rows, err)
	}
	h.Release()
}

func TestAdoptMessageTooLarge(t *testing.T) {
	s, dir := openShmStore(t, 64<<20)
	rec := shmtest.Batch(1, 100_000) // several MiB in one message
	defer rec.Release()
	shmtest.WriteFile(t, filepath.Join(dir, "big"), shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec}))
	if _, _, err := s.Adopt(testCtx(t), "big", 1<<20); !errors.Is(err, ErrInvalidObject) || !strings.Contains(err.Error(), "smaller batches") {
		t.Fatalf("a batch larger than the node's messages: %v, want ErrInvalidObject", err)
	}
	if shmtest.Exists(filepath.Join(dir, "big")) {
		t.Fatal("the refused file is still there")
	}
}
