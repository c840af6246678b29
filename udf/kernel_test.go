// Tests for the shared kernel helpers and for concurrent Eval on slices of one batch.
package udf

import (
	"context"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestAndValidity combines arguments sliced at different offsets, some
// without nulls.
func TestAndValidity(t *testing.T) {
	mem := newMem(t)
	const n = 70
	want := make([]bool, n)
	var args []arrow.Array
	for k, pad := range []int{0, 5, 11, 3} {
		vals := make([]any, n)
		for i := range vals {
			if k < 3 && i%(k+2) == 1 { // argument 3 has no nulls
				continue
			}
			vals[i] = 1.0
		}
		args = append(args, column(t, mem, arrow.PrimitiveTypes.Float64, pad, vals))
	}
	defer func() {
		for _, a := range args {
			a.Release()
		}
	}()
	nulls := 0
	for i := range want {
		want[i] = args[0].IsValid(i) && args[1].IsValid(i) && args[2].IsValid(i) && args[3].IsValid(i)
		if !want[i] {
			nulls++
		}
	}

	buf, gotNulls := andValidity(mem, n, args...)
	if buf == nil {
		t.Fatal("nil bitmap for arguments with nulls")
	}
	defer buf.Release()
	if gotNulls != nulls {
		t.Errorf("null count %d, want %d", gotNulls, nulls)
	}
	for i := range want {
		if got := bitutil.BitIsSet(buf.Bytes(), i); got != want[i] {
			t.Errorf("row %d: valid %v, want %v", i, got, want[i])
		}
	}

	if buf, nulls := andValidity(mem, n, args[3]); buf != nil || nulls != 0 {
		t.Errorf("arguments without nulls: got a bitmap, %d nulls", nulls)
	}
}

// TestConcurrentEval evaluates every built-in on many zero-copy slices of one
// batch at once, as the scheduler does, and compares each slice's result
// with the same rows of the whole batch's result. Run it with -race.
func TestConcurrentEval(t *testing.T) {
	mem := newMem(t)
	const rows, chunk = 5000, 333
	cases := []struct {
		f    Func
		args []arrow.Array
	}{
		{haversineKm{}, benchCoords(mem, rows, true)},
		{levenshtein{}, []arrow.Array{benchWords(mem, rows, 7), withNulls(t, mem, benchWords(mem, rows, 8))}},
		{jaroWinkler{}, []arrow.Array{withNulls(t, mem, benchWords(mem, rows, 9)), benchWords(mem, rows, 10)}},
		{sha256Hex{}, []arrow.Array{withNulls(t, mem, benchWords(mem, rows, 11))}},
		{geohashEncode{}, geohashArgsFor(t, mem, rows)},
		{identity{}, []arrow.Array{benchWords(mem, rows, 12)}},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.f.Name(), func(t *testing.T) {
			defer func() {
				for _, a := range tc.args {
					a.Release()
				}
			}()
			whole, err := tc.f.Eval(ctx, mem, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			defer whole.Release()

			var wg sync.WaitGroup
			for lo := 0; lo < rows; lo += chunk {
				hi := min(lo+chunk, rows)
				wg.Go(func() {
					slice := make([]arrow.Array, len(tc.args))
					for k, a := range tc.args {
						slice[k] = array.NewSlice(a, int64(lo), int64(hi))
						defer slice[k].Release()
					}
					got, err := tc.f.Eval(ctx, mem, slice)
					if err != nil {
						t.Errorf("rows %d..%d: %v", lo, hi, err)
						return
					}
					defer got.Release()
					want := array.NewSlice(whole, int64(lo), int64(hi))
					defer want.Release()
					if !array.ApproxEqual(got, want, array.WithNaNsEqual(true)) {
						t.Errorf("rows %d..%d: slice result differs from the whole batch's", lo, hi)
					}
				})
			}
			wg.Wait()
		})
	}
}

// withNulls returns a copy of a utf8 array with every fifth row null, and
// releases a.
func withNulls(t testing.TB, mem memory.Allocator, a arrow.Array) arrow.Array {
	t.Helper()
	defer a.Release()
	s := a.(*array.String)
	b := array.NewStringBuilder(mem)
	defer b.Release()
	for i := 0; i < s.Len(); i++ {
		if i%5 == 2 {
			b.AppendNull()
			continue
		}
		b.Append(s.Value(i))
	}
	return b.NewArray()
}

// geohashArgsFor returns valid geohash_encode arguments for n rows, some null.
func geohashArgsFor(t testing.TB, mem memory.Allocator, n int) []arrow.Array {
	t.Helper()
	coords := benchCoords(mem, n, true)
	coords[2].Release()
	coords[3].Release()
	b := array.NewInt32Builder(mem)
	defer b.Release()
	for i := 0; i < n; i++ {
		if i%11 == 3 {
			b.AppendNull()
			continue
		}
		b.Append(int32(1 + i%12))
	}
	return []arrow.Array{coords[0], coords[1], b.NewArray()}
}

// TestEvalEmpty evaluates every built-in on zero-length arguments that have
// no buffers at all, as an IPC reader may hand them over.
func TestEvalEmpty(t *testing.T) {
	for _, f := range Builtins() {
		t.Run(f.Name(), func(t *testing.T) {
			mem := newMem(t)
			types := argTypes(f)
			args := make([]arrow.Array, len(types))
			for k, dt := range types {
				data := array.NewData(dt, 0, []*memory.Buffer{nil, nil, nil}[:len(dt.Layout().Buffers)], nil, 0, 0)
				args[k] = array.MakeFromData(data)
				data.Release()
				defer args[k].Release()
			}
			out, err := f.Eval(context.Background(), mem, args)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if out.Len() != 0 || !arrow.TypeEqual(out.DataType(), f.Signature().Result.Type) {
				t.Errorf("got %d rows of %s, want 0 of %s", out.Len(), out.DataType(), f.Signature().Result.Type)
			}
		})
	}
}
