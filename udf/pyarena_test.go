// The shared-memory arena between the node and a Python worker.
package udf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sys/unix"

	"github.com/quiver-udf/quiver/internal/testpy"
)

// arrowBlob makes a registered blob of kind "arrow" from the function f in src.
func arrowBlob(t testing.TB, py, src, ret string) []byte {
	return testpy.Blob(t, py, src, "arrow", ret)
}

func seqInt64(mem memory.Allocator, n, start int) arrow.Array {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.Reserve(n)
	for i := 0; i < n; i++ {
		b.UnsafeAppend(int64(start + i))
	}
	return b.NewArray()
}

// BenchmarkPoolArena: an identity function (kind "arrow") on one int64
// column of 8 KiB, 1 MiB and 64 MiB, through PyFunc.Eval: encode, the
// worker's round trip, decode.
func BenchmarkPoolArena(b *testing.B) {
	py := testPython(b)
	pool, err := NewWorkerPool(PoolConfig{Workers: 1, Python: py}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	f, err := NewPyFunc("id", arrowBlob(b, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	for _, kib := range []int{8, 1 << 10, 64 << 10} {
		name := strconv.Itoa(kib) + "KiB"
		if kib >= 1<<10 {
			name = strconv.Itoa(kib>>10) + "MiB"
		}
		b.Run(name, func(b *testing.B) {
			arg := seqInt64(mem, kib<<10/8, 0)
			defer arg.Release()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.SetBytes(int64(kib << 10))
			for i := 0; i < b.N; i++ {
				out, err := f.Eval(ctx, mem, []arrow.Array{arg})
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
		})
	}
}

func TestArenaSpan(t *testing.T) {
	a, err := newArena()
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	size := uint64(a.size())
	if size != arenaInitial {
		t.Fatalf("size %d, want %d", size, arenaInitial)
	}
	for _, r := range [][]uint64{{0, 0}, {0, size}, {size, 0}, {64, size - 64}, {size - 1, 1}} {
		b, err := a.span(r)
		if err != nil || uint64(len(b)) != r[1] || uint64(cap(b)) != r[1] {
			t.Fatalf("span %v: %d bytes (cap %d), %v", r, len(b), cap(b), err)
		}
	}
	for _, r := range [][]uint64{nil, {}, {0}, {0, 1, 2}, {0, size + 1}, {size + 1, 0}, {size, 1},
		{1, math.MaxUint64}, {math.MaxUint64, 2}, {size / 2, size/2 + 1}} {
		if _, err := a.span(r); !errors.Is(err, ErrProtocol) {
			t.Fatalf("span %v: %v, want ErrProtocol", r, err)
		}
	}
	var none *arena
	if _, err := none.span([]uint64{0, 0}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("span without an arena: %v, want ErrProtocol", err)
	}
}

func TestArenaGrowsAndNeverShrinks(t *testing.T) {
	a, err := newArena()
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	copy(a.mem, "kept across growth")
	if !a.fit(arenaInitial/2) || a.size() != arenaInitial {
		t.Fatalf("fit of half the size changed it to %d", a.size())
	}
	if !a.fit(arenaInitial/2+1) || a.size() != 2*arenaInitial {
		t.Fatalf("size %d after fit(%d), want %d", a.size(), arenaInitial/2+1, 2*arenaInitial)
	}
	if !a.fit(arenaInitial+1) || a.size() != 4*arenaInitial {
		t.Fatalf("size %d after fit(%d), want %d", a.size(), arenaInitial+1, 4*arenaInitial)
	}
	if string(a.mem[:18]) != "kept across growth" {
		t.Fatal("growing lost the arena's contents")
	}
	if a.fit(arenaMax+1) || a.size() != 4*arenaInitial {
		t.Fatalf("fit past arenaMax: size %d", a.size())
	}
	if !a.fit(arenaMax) || a.size() != arenaMax {
		t.Fatalf("fit(arenaMax): size %d", a.size())
	}
	// Sealed: no one (a worker included) can shrink it under a mapping.
	if err := unix.Ftruncate(int(a.f.Fd()), arenaInitial); !errors.Is(err, unix.EPERM) {
		t.Fatalf("shrinking the memfd: %v, want EPERM", err)
	}
	// Trimming keeps the size and the pages below arenaKeep.
	copy(a.mem[arenaKeep+8:], "gone")
	a.used(arenaKeep + 1<<20)
	a.trim(1 << 20)
	if a.size() != arenaMax || string(a.mem[:4]) != "kept" || a.mem[arenaKeep+8] != 0 {
		t.Fatalf("after trim: size %d, %q, %d", a.size(), a.mem[:4], a.mem[arenaKeep+8])
	}
}

func TestArenaWriterSpills(t *testing.T) {
	mem := make([]byte, 10)
	w := arenaWriter{mem: mem}
	w.Write([]byte("abcd"))
	w.Write([]byte("efgh"))
	if w.spill != nil || w.n != 8 || string(mem[:8]) != "abcdefgh" {
		t.Fatalf("in place: n %d, %q", w.n, mem)
	}
	w.Write([]byte("ijk"))
	w.Write([]byte("lm"))
	if w.spill == nil || w.spill.String() != "abcdefghijklm" {
		t.Fatalf("spilled: %v", w.spill)
	}
}

// withWorker runs fn on an idle worker of p, then gives it back.
func withWorker(t *testing.T, p *WorkerPool, fn func(w *pyWorker)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, err := p.acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(w)
	fn(w)
}

// inArena says whether b lies in the node's mapping of a.
func inArena(a *arena, b []byte) bool {
	if a == nil || len(b) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(a.mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(a.mem))
}

// runOn runs f on args on w directly, as the pool does, and reports whether
// the result came through the arena.
func runOn(t *testing.T, w *pyWorker, f *PyFunc, mem memory.Allocator, args ...arrow.Array) (arrow.Array, bool, error) {
	t.Helper()
	var (
		col     arrow.Array
		viaMaps bool
	)
	_, err := w.run(Task{FnID: f.id, Name: f.name, Blob: f.blob,
		Encode: func(wr io.Writer) error { return encodeArgs(wr, args, args[0].Len(), mem) },
		Decode: func(b []byte) (err error) {
			viaMaps = inArena(w.arena, b)
			col, err = decodeResult(b, mem)
			return err
		}})
	return col, viaMaps, err
}

func inode(t *testing.T, a *arena) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(a.f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPoolArenaGrowth(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool := newTestPool(t, py, 1)
	f, _ := NewPyFunc("id", arrowBlob(t, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	withWorker(t, pool, func(w *pyWorker) {
		for _, rows := range []int{1000, 3 << 20, 1000, 5 << 20} { // 24 and 40 MiB: past the initial 8 MiB
			arg := seqInt64(mem, rows, rows)
			defer arg.Release()
			out, viaArena, err := runOn(t, w, f, mem, arg)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if !array.Equal(arg, out) || !viaArena {
				t.Fatalf("%d rows: equal %v, via the arena %v", rows, array.Equal(arg, out), viaArena)
			}
		}
		if w.arena.size() != 128<<20 {
			t.Fatalf("arena of %d bytes, want 128 MiB (2 x 40 MiB, rounded up)", w.arena.size())
		}
	})
}

func TestPoolResultTooLargeForArena(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool := newTestPool(t, py, 1)
	f, _ := NewPyFunc("pad", arrowBlob(t, py, `def f(a): return pa.array(["%0100d" % v for v in a.to_pylist()])`, "pa.string()"),
		arrow.BinaryTypes.String, pool)
	rows := 100_000 // 800 kB in, 10 MB out: more than the arena holds after the arguments
	arg := seqInt64(mem, rows, 0)
	defer arg.Release()
	withWorker(t, pool, func(w *pyWorker) {
		out, viaArena, err := runOn(t, w, f, mem, arg)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		if viaArena || w.arena.size() != arenaInitial {
			t.Fatalf("via the arena %v, arena of %d bytes", viaArena, w.arena.size())
		}
		s := out.(*array.String)
		for _, i := range []int{0, 1, rows - 1} {
			if want := fmt.Sprintf("%0100d", i); s.Value(i) != want {
				t.Fatalf("row %d: %q", i, s.Value(i))
			}
		}
		if s.Len() != rows {
			t.Fatalf("%d rows", s.Len())
		}
	})
}

// TestPoolArenaReuse: many tasks of different sizes, sliced arguments (as
// the scheduler cuts them) and two types, on one arena: every result is
// the input, exactly.
func TestPoolArenaReuse(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool := newTestPool(t, py, 1)
	ints, _ := NewPyFunc("idi", arrowBlob(t, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	strs, _ := NewPyFunc("ids", arrowBlob(t, py, "def f(a): return a", "pa.string()"), arrow.BinaryTypes.String, pool)
	bigInts := seqInt64(mem, 1<<20, -500)
	defer bigInts.Release()
	sb := array.NewStringBuilder(mem)
	for i := 0; i < 200_000; i++ {
		if i%7 == 3 {
			sb.AppendNull()
		} else {
			sb.Append(strings.Repeat("x", i%13) + strconv.Itoa(i))
		}
	}
	bigStrs := sb.NewArray()
	sb.Release()
	defer bigStrs.Release()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		f, big := ints, bigInts
		if i%2 == 1 {
			f, big = strs, bigStrs
		}
		n := rng.IntN(big.Len())
		if i%5 == 0 {
			n = rng.IntN(10)
		}
		off := rng.IntN(big.Len() - n + 1)
		arg := array.NewSlice(big, int64(off), int64(off+n))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := f.Eval(ctx, mem, []arrow.Array{arg})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !array.Equal(arg, out) {
			t.Fatalf("task %d (%s, %d rows at %d): the result differs from the input", i, f.name, n, off)
		}
		arg.Release()
		out.Release()
	}
	if st := pool.Stats(); st.Restarts != 0 || st.Tasks != 40 {
		t.Fatalf("stats %+v", st)
	}
}

// TestWorkerKilledMidTask: a worker that scribbles over its arena and dies
// fails its task with ErrWorkerDied; its replacement has a new arena.
func TestWorkerKilledMidTask(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool := newTestPool(t, py, 1)
	die, _ := NewPyFunc("die", arrowBlob(t, py, `
import mmap, os, signal
def f(a):
    m = mmap.mmap(4, 0)
    m[:1 << 20] = b"\xff" * (1 << 20)
    os.kill(os.getpid(), signal.SIGKILL)
`, "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	id, _ := NewPyFunc("id", arrowBlob(t, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	var before uint64
	withWorker(t, pool, func(w *pyWorker) { before = inode(t, w.arena) })
	arg := seqInt64(mem, 1000, 7)
	defer arg.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := die.Eval(ctx, mem, []arrow.Array{arg}); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("got %v, want ErrWorkerDied", err)
	}
	withWorker(t, pool, func(w *pyWorker) {
		if inode(t, w.arena) == before {
			t.Fatal("the replacement shares the dead worker's arena")
		}
		out, viaArena, err := runOn(t, w, id, mem, arg)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		if !array.Equal(arg, out) || !viaArena {
			t.Fatalf("after the replacement: equal %v, via the arena %v", array.Equal(arg, out), viaArena)
		}
	})
	if st := pool.Stats(); st.Restarts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPinnedArgumentsAreNotOverwritten: a class that keeps its first input
// (a zero-copy view of the arena) keeps it intact: while the worker says
// it holds arena memory, the node sends arguments in the frame body.
func TestPinnedArgumentsAreNotOverwritten(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool := newTestPool(t, py, 1)
	prog := `
class f:
    def __init__(self):
        self.kept = self.copy = None
        self.done = False
    def __call__(self, s):
        if s.iloc[0] == -1:
            self.kept, self.done = None, True
        elif self.kept is None and not self.done:
            self.kept, self.copy = s, s.copy()
        if self.kept is not None and not self.kept.equals(self.copy):
            raise RuntimeError("the kept input changed under the function")
        return s
import cloudpickle, sys, pyarrow as pa
sys.stdout.buffer.write(cloudpickle.dumps({"fn": f, "kind": "class", "returns": pa.int64(), "spark": None}))
`
	blob, err := exec.Command(py, "-c", prog).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := NewPyFunc("keeper", blob, arrow.PrimitiveTypes.Int64, pool)
	withWorker(t, pool, func(w *pyWorker) {
		for i, c := range []struct {
			first              int
			arena, pinnedAfter bool
		}{
			{1, true, true},    // kept: pinned
			{100, false, true}, // sent in the body; the kept one unchanged
			{-1, false, false}, // let go
			{200, true, false}, // the arena again
			{300, true, false},
		} {
			arg := seqInt64(mem, 50_000, c.first)
			defer arg.Release()
			out, viaArena, err := runOn(t, w, f, mem, arg)
			if err != nil {
				t.Fatalf("task %d: %v", i, err)
			}
			defer out.Release()
			if !array.Equal(arg, out) || viaArena != c.arena || w.pinned != c.pinnedAfter {
				t.Fatalf("task %d: equal %v, via the arena %v, pinned %v", i, array.Equal(arg, out), viaArena, w.pinned)
			}
		}
	})
}
