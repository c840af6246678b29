// Tests of the store with real spill files: round trips, the memory bound
// under a workload three times its size, concurrency, misuse, Close.
package objectstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sync/errgroup"
)

// hang bounds every wait in these tests: reaching it means a hang. It
// never decides a pass.
const hang = 60 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a store whose batches come from a checked allocator,
// spilling under a temp dir; cleanup closes it and checks that no Arrow
// memory is left and no spill file either.
func openStore(t testing.TB, cfg Config) (*Store, *memory.CheckedAllocator) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	cfg.Mem = mem
	if cfg.SpillDir == "" {
		cfg.SpillDir = t.TempDir()
	}
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mem.AssertSize(t, 0)
		if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("spill directory %s left after Close (%v)", s.dir, err)
		}
	})
	return s, mem
}

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

// genBatches makes a deterministic stream of about size bytes from seed:
// random int64s (every 11th null) and strings, in batches of up to 8192
// rows.
func genBatches(mem memory.Allocator, seed int64, size int) Object {
	rng := rand.New(rand.NewSource(seed))
	rows := size / 24
	var recs []arrow.RecordBatch
	for rows > 0 {
		n := min(rows, 8192)
		rows -= n
		ib := array.NewInt64Builder(mem)
		sb := array.NewStringBuilder(mem)
		ib.Reserve(n)
		sb.Reserve(n)
		sb.ReserveData(16 * n)
		var raw [8]byte
		var str [16]byte
		for i := 0; i < n; i++ {
			if i%11 == 10 {
				ib.UnsafeAppendBoolToBitmap(false)
			} else {
				ib.UnsafeAppend(rng.Int63())
			}
			binary.LittleEndian.PutUint64(raw[:], rng.Uint64())
			hex.Encode(str[:], raw[:])
			sb.BinaryBuilder.Append(str[:])
		}
		ia, sa := ib.NewArray(), sb.NewArray()
		recs = append(recs, array.NewRecordBatch(testSchema, []arrow.Array{ia, sa}, int64(n)))
		ia.Release()
		sa.Release()
		ib.Release()
		sb.Release()
	}
	return Batches(testSchema, recs)
}

func genBlob(seed int64, size int) Object {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return Blob(b)
}

// gen makes object i of a workload: even ones batches, odd ones blobs.
func gen(mem memory.Allocator, i, size int) Object {
	if i%2 == 0 {
		return genBatches(mem, int64(i), size)
	}
	return genBlob(int64(i), size)
}

// sameObject fails unless got holds exactly want's data.
func sameObject(t testing.TB, what string, got, want Object) {
	t.Helper()
	if got.IsBlob() != want.IsBlob() {
		t.Fatalf("%s: blob %v, want blob %v", what, got.IsBlob(), want.IsBlob())
	}
	if want.IsBlob() {
		if !bytes.Equal(got.Blob, want.Blob) {
			t.Fatalf("%s: blob of %d bytes differs from the %d put", what, len(got.Blob), len(want.Blob))
		}
		return
	}
	if !got.Schema.Equal(want.Schema) {
		t.Fatalf("%s: schema %s, want %s", what, got.Schema, want.Schema)
	}
	if len(got.Batches) != len(want.Batches) {
		t.Fatalf("%s: %d batches, want %d", what, len(got.Batches), len(want.Batches))
	}
	for i := range want.Batches {
		if !array.RecordEqual(got.Batches[i], want.Batches[i]) {
			t.Fatalf("%s: batch %d differs", what, i)
		}
	}
}

// readBack pins h, compares it with want and unpins it.
func readBack(t testing.TB, ctx context.Context, h *Handle, want Object) {
	t.Helper()
	got, err := h.Pin(ctx)
	if err != nil {
		t.Fatalf("pin %s: %v", h.ID(), err)
	}
	defer h.Unpin()
	sameObject(t, string(h.ID()), got, want)
}

func TestPutPinRelease(t *testing.T) {
	ctx := testCtx(t)
	s, mem := openStore(t, Config{MemoryBytes: 64 << 20})
	objs := []Object{
		genBatches(mem, 1, 100_000),
		Batches(testSchema, nil), // an empty stream
		genBlob(2, 1000),
		Blob(nil),
	}
	for i, obj := range objs {
		h, err := s.Put(ctx, obj)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.ID()) != 32 {
			t.Errorf("object %d: id %q, want 32 hex digits", i, h.ID())
		}
		if h.Size() != obj.Size() {
			t.Errorf("object %d: size %d, want %d", i, h.Size(), obj.Size())
		}
		readBack(t, ctx, h, obj)
		h2, err := s.Acquire(h.ID())
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
		readBack(t, ctx, h2, obj) // still alive: h2 holds a reference
		h2.Release()
		if _, err := s.Acquire(h.ID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("object %d after its last release: %v, want ErrNotFound", i, err)
		}
		obj.release()
	}
	if st := s.Stats(); st.Objects != 0 || st.MemoryBytes != 0 {
		t.Fatalf("stats after releasing everything: %+v", st)
	}
}

// TestWorkloadThreeTimesMemory puts 96 MiB of distinct objects in a store
// of 32 MiB and reads them all back in a random order: the store's
// accounting never passes its bound, and every object comes back exactly.
func TestWorkloadThreeTimesMemory(t *testing.T) {
	ctx := testCtx(t)
	const bound, objSize, n = 32 << 20, 2 << 20, 48
	s, mem := openStore(t, Config{MemoryBytes: bound, SpillFileBytes: 16 << 20})
	var hs []*Handle
	var total int64
	for i := 0; i < n; i++ {
		obj := gen(mem, i, objSize)
		h, err := s.Put(ctx, obj)
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		total += h.Size()
		obj.release() // the store holds its own references
		hs = append(hs, h)
	}
	if total < 3*bound*9/10 {
		t.Fatalf("the workload is %d bytes, want about 3x the bound %d", total, bound)
	}
	for _, i := range rand.New(rand.NewSource(7)).Perm(n) {
		want := gen(mem, i, objSize)
		readBack(t, ctx, hs[i], want)
		want.release()
	}
	st := s.Stats()
	t.Logf("stats: %+v", st)
	if st.MemoryPeakBytes > bound {
		t.Fatalf("peak %d bytes in memory, past the bound %d", st.MemoryPeakBytes, bound)
	}
	if st.SpillsTotal == 0 || st.RestoresTotal == 0 || st.SpillFiles < 2 {
		t.Fatalf("expected spills, restores and several spill files: %+v", st)
	}
	for _, h := range hs {
		h.Release()
	}
	st = s.Stats()
	if st.Objects != 0 || st.MemoryBytes != 0 || st.SpillFiles != 0 {
		t.Fatalf("stats after releasing everything: %+v", st)
	}
	if left, _ := os.ReadDir(s.dir); len(left) != 0 {
		t.Fatalf("spill files left after every object was freed: %v", left)
	}
}

// TestConcurrentReadersAndSpillingWriter runs readers against a writer
// that keeps the store spilling; run it with -race.
func TestConcurrentReadersAndSpillingWriter(t *testing.T) {
	ctx := testCtx(t)
	const bound, objSize, n, readers = 4 << 20, 256 << 10, 64, 4
	s, mem := openStore(t, Config{MemoryBytes: bound, SpillFileBytes: 1 << 20})
	var (
		mu  sync.Mutex
		ids []ID
	)
	var hs []*Handle
	var written atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer written.Store(true)
		for i := 0; i < n; i++ {
			obj := gen(mem, i, objSize)
			h, err := s.PutWithID(gctx, ID(fmt.Sprint("obj-", i)), obj)
			obj.release()
			if err != nil {
				return fmt.Errorf("put %d: %w", i, err)
			}
			hs = append(hs, h)
			mu.Lock()
			ids = append(ids, h.ID())
			mu.Unlock()
		}
		return nil
	})
	var reads atomic.Int64
	for r := 0; r < readers; r++ {
		g.Go(func() error {
			rng := rand.New(rand.NewSource(int64(r)))
			for !written.Load() || reads.Load() < 4*n {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				mu.Lock()
				if len(ids) == 0 {
					mu.Unlock()
					continue
				}
				id := ids[rng.Intn(len(ids))]
				mu.Unlock()
				h, err := s.Acquire(id)
				if err != nil {
					return err
				}
				var i int
				fmt.Sscanf(string(id), "obj-%d", &i)
				got, err := h.Pin(gctx)
				if err != nil {
					h.Release()
					return fmt.Errorf("pin %s: %w", id, err)
				}
				want := gen(mem, i, objSize)
				ok := want.IsBlob() == got.IsBlob() && (want.IsBlob() && bytes.Equal(want.Blob, got.Blob) ||
					!want.IsBlob() && len(want.Batches) == len(got.Batches) && array.RecordEqual(want.Batches[0], got.Batches[0]))
				want.release()
				h.Unpin()
				h.Release()
				if !ok {
					return fmt.Errorf("object %s came back different", id)
				}
				reads.Add(1)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("%d reads; stats: %+v", reads.Load(), st)
	if st.MemoryPeakBytes > bound {
		t.Fatalf("peak %d bytes in memory, past the bound %d", st.MemoryPeakBytes, bound)
	}
	if st.SpillsTotal == 0 {
		t.Fatalf("the writer never made the store spill: %+v", st)
	}
	for _, h := range hs {
		h.Release()
	}
}

func TestOverCapacity(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	if _, err := s.Put(ctx, genBlob(1, 1<<20+1)); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("an object larger than the store: %v, want ErrOverCapacity", err)
	}
	a, err := s.Put(ctx, genBlob(2, 600<<10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, genBlob(3, 600<<10)); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("a put beside a pinned object that leaves no room: %v, want ErrOverCapacity", err)
	}
	a.Unpin()
	// Unpinned, a can be spilled to make room.
	b, err := s.Put(ctx, genBlob(3, 600<<10))
	if err != nil {
		t.Fatalf("after unpin: %v", err)
	}
	readBack(t, ctx, a, genBlob(2, 600<<10)) // spills b to read a back
	if st := s.Stats(); st.MemoryPeakBytes > 1<<20 {
		t.Fatalf("peak past the bound: %+v", st)
	}
	a.Release()
	b.Release()
}

func TestReleaseTwicePanics(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	h, err := s.PutWithID(ctx, "my-object", genBlob(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	msg := func(f func()) (msg string) {
		defer func() { msg = fmt.Sprint(recover()) }()
		f()
		return ""
	}
	if m := msg(h.Release); !strings.Contains(m, "my-object") || !strings.Contains(m, "below zero") {
		t.Fatalf("second release: panic %q, want one naming my-object and the count below zero", m)
	}
	h2, err := s.PutWithID(ctx, "pinned", genBlob(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	if m := msg(h2.Unpin); !strings.Contains(m, "pinned") || !strings.Contains(m, "below zero") {
		t.Fatalf("unpin without pin: panic %q", m)
	}
	// The store still works after the panics.
	readBack(t, ctx, h2, genBlob(1, 10))
	h2.Release()
}

func TestContentAddressed(t *testing.T) {
	ctx := testCtx(t)
	s, mem := openStore(t, Config{MemoryBytes: 1 << 20})
	obj := genBatches(mem, 1, 10_000)
	defer obj.release()
	h1, err := s.PutWithID(ctx, "sha-1", obj)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.PutWithID(ctx, "sha-1", obj)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Objects != 1 || st.MemoryBytes != obj.Size() {
		t.Fatalf("the same id put twice is stored twice: %+v", st)
	}
	h1.Release()
	readBack(t, ctx, h2, obj)
	h2.Release()
	if _, err := s.Acquire("sha-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after both releases: %v", err)
	}
	if _, err := s.PutWithID(ctx, "", obj); !errors.Is(err, ErrInvalidObject) {
		t.Fatalf("empty id: %v", err)
	}
	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int32}}, nil)
	if _, err := s.Put(ctx, Batches(other, obj.Batches)); !errors.Is(err, ErrInvalidObject) {
		t.Fatalf("batches of another schema: %v", err)
	}
}

// TestSpillFilesShared: small objects share files; files go as soon as
// their objects are freed, while others stay readable.
func TestSpillFilesShared(t *testing.T) {
	ctx := testCtx(t)
	const bound = 1 << 20
	s, _ := openStore(t, Config{MemoryBytes: bound, HighWater: 0.5, SpillFileBytes: 256 << 10})
	var hs []*Handle
	for i := 0; i < 32; i++ {
		h, err := s.Put(ctx, genBlob(int64(i), 64<<10))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	// Wait for the background spiller to bring memory under the mark.
	deadline := time.Now().Add(hang)
	for s.Stats().MemoryBytes > bound/2 {
		if time.Now().After(deadline) {
			t.Fatalf("never spilled under the high-water mark: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	files, _ := os.ReadDir(s.dir)
	if st.SpillFiles < 2 || len(files) != st.SpillFiles || st.SpilledObjects < 16 {
		t.Fatalf("%d files on disk; stats %+v", len(files), st)
	}
	for i, h := range hs {
		if i%2 == 0 {
			h.Release()
		}
	}
	for i, h := range hs {
		if i%2 == 1 {
			readBack(t, ctx, h, genBlob(int64(i), 64<<10))
			h.Release()
		}
	}
	if files, _ := os.ReadDir(s.dir); len(files) != 0 || s.Stats().SpillFiles != 0 {
		t.Fatalf("files left after every object was freed: %v", files)
	}
}

func TestClose(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	s, mem := openStore(t, Config{MemoryBytes: 1 << 20, SpillDir: dir, HighWater: 0.1})
	obj := genBatches(mem, 1, 300_000)
	h, err := s.Put(ctx, obj)
	obj.release()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, genBlob(1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
	if _, err := s.Acquire(h.ID()); !errors.Is(err, ErrClosed) {
		t.Fatalf("acquire after close: %v", err)
	}
	if _, err := h.Pin(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("pin after close: %v", err)
	}
	h.Release() // inert
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left in the spill directory: %v", left)
	}
}
