// Test helpers: build argument arrays from rows of Go values, padded and sliced.
package udf

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// pads are the offsets every kernel test runs at: 0 (no slice), 3 (inside a
// bitmap byte) and 13 (past the first byte).
var pads = []int{0, 3, 13}

// newMem returns a checked allocator that fails the test if anything it
// handed out is still allocated when the test ends.
func newMem(t testing.TB) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// column builds an array of type dt from vals (nil is null), preceded and
// followed by pad junk rows, and returns the slice holding exactly vals.
// The junk rows alternate null and a value a kernel would reject or turn
// into a visible wrong answer, so a kernel that ignores the offset fails.
func column(t testing.TB, mem memory.Allocator, dt arrow.DataType, pad int, vals []any) arrow.Array {
	t.Helper()
	b := array.NewBuilder(mem, dt)
	defer b.Release()
	junk := func() {
		for i := 0; i < pad; i++ {
			if i%2 == 0 {
				b.AppendNull()
				continue
			}
			switch b := b.(type) {
			case *array.Float64Builder:
				b.Append(math.NaN())
			case *array.Int32Builder:
				b.Append(99)
			case *array.StringBuilder:
				b.Append("junk\u00e9")
			case *array.LargeStringBuilder:
				b.Append("junk\u00e9")
			case *array.BinaryBuilder:
				b.Append([]byte{0xde, 0xad})
			default:
				t.Fatalf("column: no junk for %s", dt)
			}
		}
	}
	junk()
	for _, v := range vals {
		if v == nil {
			b.AppendNull()
			continue
		}
		switch b := b.(type) {
		case *array.Float64Builder:
			b.Append(v.(float64))
		case *array.Int32Builder:
			b.Append(int32(v.(int)))
		case *array.StringBuilder:
			b.Append(v.(string))
		case *array.LargeStringBuilder:
			b.Append(v.(string))
		case *array.BinaryBuilder:
			switch v := v.(type) {
			case string:
				b.AppendString(v)
			case []byte:
				b.Append(v)
			}
		default:
			t.Fatalf("column: unsupported type %s", dt)
		}
	}
	junk()
	full := b.NewArray()
	defer full.Release()
	return array.NewSlice(full, int64(pad), int64(pad+len(vals)))
}

// evalRows binds f to types, builds one column per argument from rows
// (rows[i][k] is argument k of row i) at the given pad, and evaluates. The
// caller releases the result.
func evalRows(t testing.TB, mem memory.Allocator, f Func, types []arrow.DataType, pad int, rows [][]any) (arrow.Array, error) {
	t.Helper()
	rt, err := f.Bind(types)
	if err != nil {
		t.Fatalf("%s: Bind(%v): %v", f.Name(), types, err)
	}
	args := make([]arrow.Array, len(types))
	for k, dt := range types {
		vals := make([]any, len(rows))
		for i, r := range rows {
			vals[i] = r[k]
		}
		args[k] = column(t, mem, dt, pad, vals)
	}
	defer func() {
		for _, a := range args {
			a.Release()
		}
	}()
	out, err := f.Eval(context.Background(), mem, args)
	if err != nil {
		return nil, err
	}
	if out.Len() != len(rows) {
		out.Release()
		t.Fatalf("%s: got %d rows, want %d", f.Name(), out.Len(), len(rows))
	}
	if !arrow.TypeEqual(out.DataType(), rt) {
		out.Release()
		t.Fatalf("%s: result type %s, Bind said %s", f.Name(), out.DataType(), rt)
	}
	if err := array.ValidateFull(out); err != nil {
		out.Release()
		t.Fatalf("%s: invalid result array: %v", f.Name(), err)
	}
	return out, nil
}

// argTypes returns the canonical argument types of f.
func argTypes(f Func) []arrow.DataType {
	sig := f.Signature()
	out := make([]arrow.DataType, len(sig.Args))
	for i, a := range sig.Args {
		out[i] = a.Type
	}
	return out
}

// padName labels a subtest by pad.
func padName(pad int) string { return fmt.Sprintf("offset=%d", pad) }
