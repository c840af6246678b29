// Groups on real Python workers: each part a call of its own, a part that
// raises nulls only its own rows, a worker that dies fails the group.
package udf

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/zap/zaptest"
)

func TestEvalParts(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	pool, err := NewWorkerPool(PoolConfig{Workers: 1, Python: py, Output: os.Stderr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Each call answers its first value times 100 plus its length, so the
	// result says where every call was cut; a call holding 13 raises, one
	// holding 99 kills its worker.
	src := "import os\n" +
		"def f(a):\n" +
		"    v = a.to_pylist()\n" +
		"    if 13 in v: raise ValueError('unlucky 13')\n" +
		"    if 99 in v: os._exit(3)\n" +
		"    return pa.array([v[0] * 100 + len(v)] * len(v), pa.int64())\n"
	f, err := NewPyFunc("cuts", arrowBlob(t, py, src, "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in := seqInt64(mem, 20, 0) // 0..19
	defer in.Release()
	args := []arrow.Array{array.NewSlice(in, 10, 20)} // 10..19
	defer args[0].Release()
	col, works, errs, err := f.EvalParts(ctx, mem, args, []int64{2, 1, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Release()
	// parts: [10 11] [12] [13 14 15] raises [16 17 18 19]
	want := []any{int64(1002), int64(1002), int64(1201), nil, nil, nil, int64(1604), int64(1604), int64(1604), int64(1604)}
	got := col.(*array.Int64)
	for i, w := range want {
		if (w == nil) != got.IsNull(i) || (w != nil && got.Value(i) != w.(int64)) {
			t.Fatalf("row %d: %v, want %v (all: %v)", i, got.Value(i), w, got)
		}
	}
	var pe *PyError
	if len(errs) != 4 || errs[0] != nil || errs[1] != nil || errs[3] != nil || !errors.As(errs[2], &pe) ||
		pe.Type != "ValueError" || pe.Message != "unlucky 13" || pe.Func != "cuts" {
		t.Fatalf("errors %v, want only the third part's ValueError", errs)
	}
	if len(works) != 4 || works[0] <= 0 || works[2] != 0 {
		t.Fatalf("works %v", works)
	}
	// The worker serves on: a plain task after the group.
	head := array.NewSlice(in, 0, 5)
	defer head.Release()
	one, err := f.Eval(ctx, mem, []arrow.Array{head})
	if err != nil {
		t.Fatal(err)
	}
	if v := one.(*array.Int64).Value(0); v != 5 {
		t.Fatalf("a task after the group answered %d, want 5", v)
	}
	one.Release()

	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 99, 4}, nil)
	with99 := b.NewArray()
	b.Release()
	defer with99.Release()
	if _, _, _, err := f.EvalParts(ctx, mem, []arrow.Array{with99}, []int64{2, 2}); !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("a group whose part killed its worker: %v, want ErrWorkerDied", err)
	}
}

func TestEvalPartsRefusedForConcurrentFunctions(t *testing.T) {
	py := testPython(t)
	pool, err := NewWorkerPool(PoolConfig{Workers: 1, Python: py, Output: os.Stderr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	f, _ := NewPyFunc("c", arrowBlob(t, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	if err := f.SetConcurrency(4); err != nil {
		t.Fatal(err)
	}
	if f.Groups() {
		t.Fatal("a function with concurrency 4 says its tasks group")
	}
}
