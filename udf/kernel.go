// Helpers the native kernels share: argument checks, null propagation and result buffers.
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ctxCheckEvery is how many rows a costly kernel (string distances) computes
// between two looks at its context.
const ctxCheckEvery = 1024

// evalLen checks the number of arguments Eval got and that they have equal
// lengths; it returns that length.
func evalLen(name string, want int, args []arrow.Array) (int, error) {
	if len(args) != want {
		return 0, &ArityError{Func: name, Expected: want, Got: len(args)}
	}
	n := args[0].Len()
	for i, a := range args[1:] {
		if a.Len() != n {
			return 0, Invalidf("%s: argument %d has %d rows, argument 0 has %d", name, i+1, a.Len(), n)
		}
	}
	return n, nil
}

// argAs returns args[pos] as the concrete array type T, or an *ArgError when
// Eval got an argument of a type Bind would have refused.
func argAs[T arrow.Array](name string, args []arrow.Array, pos int, expected arrow.DataType) (T, error) {
	a, ok := args[pos].(T)
	if !ok || !arrow.TypeEqual(a.DataType(), expected) {
		var zero T
		return zero, &ArgError{Func: name, Pos: pos, Expected: expected.String(), Got: args[pos].DataType()}
	}
	return a, nil
}

// andValidity returns the validity bitmap of a result of n rows that is null
// wherever any argument is null, and its null count. It returns a nil buffer
// when no argument has a null, so the caller can skip per-row checks. The
// bitmap starts at bit 0 whatever the arguments' offsets.
func andValidity(mem memory.Allocator, n int, args ...arrow.Array) (*memory.Buffer, int) {
	var (
		out *memory.Buffer
		tmp []byte
	)
	nbytes := int(bitutil.BytesForBits(int64(n)))
	for _, a := range args {
		if a.NullN() == 0 {
			continue
		}
		src, off := a.NullBitmapBytes(), a.Data().Offset()
		if out == nil {
			out = memory.NewResizableBuffer(mem)
			out.Resize(nbytes)
			memory.Set(out.Bytes(), 0)
			bitutil.CopyBitmap(src, off, n, out.Bytes(), 0)
			continue
		}
		// Realign to bit 0 first: with all offsets 0 the AND runs byte by
		// byte, which is safe in place.
		if tmp == nil {
			tmp = make([]byte, nbytes)
		}
		bitutil.CopyBitmap(src, off, n, tmp, 0)
		bitutil.BitmapAnd(out.Bytes(), tmp, 0, 0, out.Bytes(), 0, int64(n))
	}
	if out == nil {
		return nil, 0
	}
	return out, n - bitutil.CountSetBits(out.Bytes(), 0, n)
}

// newValues returns a buffer for n fixed-width values of width bytes each.
func newValues(mem memory.Allocator, n, width int) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(n * width)
	return buf
}

// fixedResult wraps a validity bitmap (may be nil) and a values buffer into
// an array of type dt and n rows. It takes over the caller's references to
// both buffers.
func fixedResult(dt arrow.DataType, n int, validity *memory.Buffer, nulls int, values *memory.Buffer) arrow.Array {
	data := array.NewData(dt, n, []*memory.Buffer{validity, values}, nil, nulls, 0)
	releaseBuffers(validity, values)
	defer data.Release()
	return array.MakeFromData(data)
}

// releaseBuffers releases every non-nil buffer, for a kernel that gives up
// before fixedResult takes them over.
func releaseBuffers(bufs ...*memory.Buffer) {
	for _, b := range bufs {
		if b != nil {
			b.Release()
		}
	}
}

// checkCtx looks at ctx every ctxCheckEvery rows.
func checkCtx(ctx context.Context, row int) error {
	if row%ctxCheckEvery == 0 {
		return ctx.Err()
	}
	return nil
}

// runeScratch holds per-call buffers that string kernels reuse across rows,
// so that a call allocates once rather than once per row. One Eval call owns
// one scratch; it is never shared between goroutines.
type runeScratch struct {
	a, b []rune
}

// decode fills the scratch with the code points of a and b. Invalid UTF-8
// bytes decode to U+FFFD, as a range over a string does.
func (s *runeScratch) decode(a, b string) ([]rune, []rune) {
	s.a = appendRunes(s.a[:0], a)
	s.b = appendRunes(s.b[:0], b)
	return s.a, s.b
}

func appendRunes(dst []rune, s string) []rune {
	for _, r := range s {
		dst = append(dst, r)
	}
	return dst
}

// mapStringPairs evaluates f on each row of two utf8 arguments into a
// fixed-width result of type T; rows where either argument is null are
// null. It is the loop of every string-distance kernel.
func mapStringPairs[T int32 | float64](ctx context.Context, mem memory.Allocator, name string, args []arrow.Array, f func(a, b string) T) (arrow.Array, error) {
	a, b, n, err := stringPair(name, args)
	if err != nil {
		return nil, err
	}
	dt := arrow.GetDataType[T]()
	validity, nulls := andValidity(mem, n, args...)
	values := newValues(mem, n, dt.(arrow.FixedWidthDataType).Bytes())
	out := arrow.GetData[T](values.Bytes())[:n]
	for i := range out {
		if err := checkCtx(ctx, i); err != nil {
			releaseBuffers(validity, values)
			return nil, err
		}
		if validity != nil && !bitutil.BitIsSet(validity.Bytes(), i) {
			out[i] = 0
			continue
		}
		out[i] = f(a.Value(i), b.Value(i))
	}
	return fixedResult(dt, n, validity, nulls, values), nil
}
