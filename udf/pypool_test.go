// The Python worker pool with real worker processes: tasks, errors, deaths
// and replacements, cancellation, a missing interpreter.
package udf

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/internal/testpy"
)

// testPython is an interpreter that imports quiver (testpy.Python).
func testPython(t testing.TB) string { return testpy.Python(t, "..") }

// pyBlob makes a registered blob of the Series function f defined in src.
func pyBlob(t *testing.T, py, src, ret string) []byte { return testpy.Blob(t, py, src, "series", ret) }

func newTestPool(t *testing.T, py string, workers int) *WorkerPool {
	t.Helper()
	p, err := NewWorkerPool(PoolConfig{Workers: workers, Python: py, Output: os.Stderr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func int64Array(mem memory.Allocator, vals ...int64) arrow.Array {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	return b.NewArray()
}

func evalPy(t *testing.T, f *PyFunc, mem memory.Allocator, vals ...int64) (arrow.Array, error) {
	t.Helper()
	arg := int64Array(mem, vals...)
	defer arg.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return f.Eval(ctx, mem, []arrow.Array{arg})
}

func TestPyFuncRuns(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 2)
	blob := pyBlob(t, py, "def f(s): return s * 10", "pa.int64()")
	f, err := NewPyFunc("times10", blob, arrow.PrimitiveTypes.Int64, pool)
	if err != nil {
		t.Fatal(err)
	}
	arg := int64Array(mem, 1, 2, 3)
	defer arg.Release()
	var work time.Duration
	for i := 0; i < 5; i++ {
		out, w, err := f.EvalWork(context.Background(), mem, []arrow.Array{arg})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.(*array.Int64).Int64Values(); len(got) != 3 || got[0] != 10 || got[2] != 30 {
			t.Fatalf("got %v", got)
		}
		out.Release()
		work += w
	}
	if work <= 0 {
		t.Fatal("no work measured after five tasks")
	}
	if st := pool.Stats(); st.Tasks != 5 || st.Workers+st.Starting != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPyFuncRaises(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 1)
	blob := pyBlob(t, py, "def f(s):\n    raise ValueError('no good: %d' % len(s))", "pa.int64()")
	f, _ := NewPyFunc("bad", blob, arrow.PrimitiveTypes.Int64, pool)
	_, err := evalPy(t, f, mem, 1, 2)
	var pe *PyError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *PyError", err)
	}
	if pe.Type != "ValueError" || pe.Message != "no good: 2" || pe.Func != "bad" || !strings.Contains(pe.Traceback, "in f") {
		t.Fatalf("got %+v", pe)
	}
	if errors.Is(err, ErrWorkerDied) {
		t.Fatal("a raising function must not look like a dead worker")
	}
	// The worker survives its function's exception.
	good, _ := NewPyFunc("good", pyBlob(t, py, "def f(s): return s", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	out, err := evalPy(t, good, mem, 7)
	if err != nil {
		t.Fatal(err)
	}
	out.Release()
	if st := pool.Stats(); st.Restarts != 0 {
		t.Fatalf("restarts %d, want 0", st.Restarts)
	}
}

func TestWorkerDeathIsReplaced(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 1)
	blob := pyBlob(t, py, "import os\ndef f(s): os._exit(3)", "pa.int64()")
	f, _ := NewPyFunc("die", blob, arrow.PrimitiveTypes.Int64, pool)
	_, err := evalPy(t, f, mem, 1)
	if !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("got %v, want ErrWorkerDied", err)
	}
	// The next task runs on a replacement.
	good, _ := NewPyFunc("good", pyBlob(t, py, "def f(s): return s + 1", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	out, err := evalPy(t, good, mem, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v := out.(*array.Int64).Value(0); v != 2 {
		t.Fatalf("got %d", v)
	}
	out.Release()
	if st := pool.Stats(); st.Restarts != 1 || st.Workers != 1 {
		t.Fatalf("stats %+v, want 1 restart and 1 worker", st)
	}
}

func TestCancelKillsBusyWorker(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 1)
	blob := pyBlob(t, py, "import time\ndef f(s):\n    time.sleep(60)\n    return s", "pa.int64()")
	f, _ := NewPyFunc("slow", blob, arrow.PrimitiveTypes.Int64, pool)
	arg := int64Array(mem, 1)
	defer arg.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Eval(ctx, mem, []arrow.Array{arg})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("the call waited for the function instead of killing its worker")
	}
	good, _ := NewPyFunc("good", pyBlob(t, py, "def f(s): return s", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	out, err := evalPy(t, good, mem, 5)
	if err != nil {
		t.Fatal(err)
	}
	out.Release()
}

func TestNoInterpreter(t *testing.T) {
	pool, err := NewWorkerPool(PoolConfig{Workers: 1, Python: "/nonexistent/python3"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f, _ := NewPyFunc("f", []byte("blob"), arrow.PrimitiveTypes.Int64, pool)
	mem := memory.NewGoAllocator()
	_, err = evalPy(t, f, mem, 1)
	if !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("got %v, want ErrNoWorkers", err)
	}
}

func TestCancelSparesShortTask(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 1)
	blob := pyBlob(t, py, "import time\ndef f(s):\n    time.sleep(0.2)\n    return s", "pa.int64()")
	f, _ := NewPyFunc("short", blob, arrow.PrimitiveTypes.Int64, pool)
	arg := int64Array(mem, 1)
	defer arg.Release()
	// Warm up: the first task loads the function.
	if out, err := f.Eval(context.Background(), mem, []arrow.Array{arg}); err == nil {
		out.Release()
	} else {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Eval(ctx, mem, []arrow.Array{arg}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if st := pool.Stats(); st.Restarts != 0 {
		t.Fatalf("a task that ended within the grace period cost a restart: %+v", st)
	}
}
