// Tests and benchmark for jaro_winkler.
package udf

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestJaroWinkler(t *testing.T) {
	tests := []struct {
		a, b any // string or nil
		want any // float64 or nil
	}{
		{"MARTHA", "MARHTA", 0.961111111111111},
		{"DWAYNE", "DUANE", 0.84},
		{"DIXON", "DICKSONX", 0.813333333333333},
		{"CRATE", "TRACE", 0.733333333333333}, // no common prefix: plain Jaro
		// Three matches out of order: t = 1.5, not rounded down to 1.
		{"abcxyz", "bcaxyz", 0.916666666666667},
		{"abc", "abc", 1.0},
		{"", "", 1.0},
		{"", "a", 0.0},
		{"a", "", 0.0},
		{"abc", "xyz", 0.0},
		{"a", "a", 1.0},
		{"ab", "ba", 0.0}, // window 0: nothing matches out of place
		// é is one code point: 3 of 4 match, prefix 3.
		{"café", "cafe", 0.883333333333333},
		{"日本語", "日本人", 0.822222222222222},
		{"🙂a", "🙂b", 0.7},
		{nil, "abc", nil},
		{"abc", nil, nil},
		{nil, nil, nil},
	}
	rows := make([][]any, 0, 2*len(tests))
	for _, tc := range tests {
		rows = append(rows, []any{tc.a, tc.b})
	}
	for _, tc := range tests { // and the other way round: the measure is symmetric
		rows = append(rows, []any{tc.b, tc.a})
	}
	f := jaroWinkler{}
	for _, pad := range pads {
		t.Run(padName(pad), func(t *testing.T) {
			mem := newMem(t)
			out, err := evalRows(t, mem, f, argTypes(f), pad, rows)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			got := out.(*array.Float64)
			for i, row := range rows {
				want := tests[i%len(tests)].want
				if want == nil {
					if got.IsValid(i) {
						t.Errorf("(%v, %v): got %v, want null", row[0], row[1], got.Value(i))
					}
					continue
				}
				if got.IsNull(i) || math.Abs(got.Value(i)-want.(float64)) > 1e-9 {
					t.Errorf("(%q, %q): got %.15f (null %v), want %.15f", row[0], row[1], got.Value(i), got.IsNull(i), want)
				}
			}
		})
	}
}

func TestJaroWinklerBind(t *testing.T) {
	f := jaroWinkler{}
	utf8 := arrow.BinaryTypes.String
	if rt, err := f.Bind([]arrow.DataType{utf8, utf8}); err != nil || !arrow.TypeEqual(rt, arrow.PrimitiveTypes.Float64) {
		t.Fatalf("Bind(utf8, utf8) = %v, %v", rt, err)
	}
	_, err := f.Bind([]arrow.DataType{arrow.BinaryTypes.Binary, utf8})
	var argErr *ArgError
	if !errors.As(err, &argErr) || argErr.Pos != 0 || argErr.Expected != "utf8" {
		t.Fatalf("Bind(binary, utf8): got %v, want *ArgError at 0 expecting utf8", err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}
	var arity *ArityError
	if _, err := f.Bind([]arrow.DataType{utf8}); !errors.As(err, &arity) || arity.Expected != 2 || arity.Got != 1 {
		t.Errorf("Bind(1 arg): got %v, want *ArityError 2/1", err)
	}
}

func BenchmarkJaroWinkler(b *testing.B) {
	const rows = 1 << 16
	mem := memory.NewGoAllocator()
	x, y := benchWords(mem, rows, 1), benchWords(mem, rows, 2)
	defer x.Release()
	defer y.Release()
	args := []arrow.Array{x, y}
	f := jaroWinkler{}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		out, err := f.Eval(ctx, mem, args)
		if err != nil {
			b.Fatal(err)
		}
		out.Release()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
