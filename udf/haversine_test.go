// Tests and benchmark for haversine_km.
package udf

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestHaversineKm(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		args []any // lat1, lon1, lat2, lon2
		want any   // float64, or nil for null
	}{
		{"same point", []any{12.5, -7.25, 12.5, -7.25}, 0.0},
		{"one degree of longitude on the equator", []any{0.0, 0.0, 0.0, 1.0}, 111.19492664455873},
		{"pole to pole", []any{90.0, 0.0, -90.0, 0.0}, 20015.086796020572},
		{"pole to equator", []any{90.0, 0.0, 0.0, 0.0}, 10007.543398010284},
		{"north pole, any longitude", []any{90.0, 0.0, 90.0, 123.0}, 0.0},
		{"south pole, any longitude", []any{-90.0, -45.0, -90.0, 170.0}, 0.0},
		{"antipodes on the equator", []any{0.0, 0.0, 0.0, 180.0}, 20015.086796020572},
		{"across the antimeridian", []any{0.0, 179.5, 0.0, -179.5}, 111.19492664455873},
		{"Paris to London", []any{48.8566, 2.3522, 51.5074, -0.1278}, 343.55606034104153},
		{"JFK to Heathrow", []any{40.6413, -73.7781, 51.47, -0.4543}, 5540.011317976541},
		{"Sydney to San Francisco", []any{-33.8688, 151.2093, 37.7749, -122.4194}, 11947.660518547895},
		{"NaN lat1", []any{nan, 0.0, 1.0, 1.0}, nan},
		{"NaN lon2", []any{0.0, 0.0, 1.0, nan}, nan},
		{"null lat1", []any{nil, 0.0, 1.0, 1.0}, nil},
		{"null lon1", []any{0.0, nil, 1.0, 1.0}, nil},
		{"null lat2", []any{0.0, 0.0, nil, 1.0}, nil},
		{"null lon2", []any{0.0, 0.0, 1.0, nil}, nil},
		{"all null", []any{nil, nil, nil, nil}, nil},
		{"null and NaN", []any{nil, nan, 1.0, 1.0}, nil},
	}
	rows := make([][]any, len(tests))
	for i, tc := range tests {
		rows[i] = tc.args
	}
	f := haversineKm{}
	for _, pad := range pads {
		t.Run(padName(pad), func(t *testing.T) {
			mem := newMem(t)
			out, err := evalRows(t, mem, f, argTypes(f), pad, rows)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			got := out.(*array.Float64)
			for i, tc := range tests {
				switch want := tc.want.(type) {
				case nil:
					if got.IsValid(i) {
						t.Errorf("%s: got %v, want null", tc.name, got.Value(i))
					}
				case float64:
					g := got.Value(i)
					switch {
					case got.IsNull(i):
						t.Errorf("%s: got null, want %v", tc.name, want)
					case math.IsNaN(want):
						if !math.IsNaN(g) {
							t.Errorf("%s: got %v, want NaN", tc.name, g)
						}
					case math.Abs(g-want) > 1e-9*max(1, want):
						t.Errorf("%s: got %.12f, want %.12f", tc.name, g, want)
					}
				}
			}
		})
	}
}

func TestHaversineKmEmpty(t *testing.T) {
	mem := newMem(t)
	f := haversineKm{}
	out, err := evalRows(t, mem, f, argTypes(f), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Release()
}

func TestHaversineKmBind(t *testing.T) {
	f := haversineKm{}
	f64, f32 := arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float32
	if rt, err := f.Bind([]arrow.DataType{f64, f64, f64, f64}); err != nil || !arrow.TypeEqual(rt, f64) {
		t.Fatalf("Bind(4 x float64) = %v, %v", rt, err)
	}

	_, err := f.Bind([]arrow.DataType{f64, f64, f32, f64})
	var argErr *ArgError
	if !errors.As(err, &argErr) {
		t.Fatalf("Bind(float32 at 2): got %v, want *ArgError", err)
	}
	if argErr.Pos != 2 || argErr.Expected != "float64" || !arrow.TypeEqual(argErr.Got, f32) {
		t.Errorf("ArgError = %+v, want Pos 2, Expected float64, Got float32", argErr)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}

	_, err = f.Bind([]arrow.DataType{f64, f64, f64})
	var arity *ArityError
	if !errors.As(err, &arity) || arity.Expected != 4 || arity.Got != 3 {
		t.Fatalf("Bind(3 args): got %v, want *ArityError 4/3", err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}
}

func TestHaversineKmEvalRejectsBadArgs(t *testing.T) {
	mem := newMem(t)
	f := haversineKm{}
	x := column(t, mem, arrow.PrimitiveTypes.Float64, 0, []any{1.0, 2.0})
	defer x.Release()
	short := column(t, mem, arrow.PrimitiveTypes.Float64, 0, []any{1.0})
	defer short.Release()
	i32 := column(t, mem, arrow.PrimitiveTypes.Int32, 0, []any{1, 2})
	defer i32.Release()

	ctx := context.Background()
	if _, err := f.Eval(ctx, mem, []arrow.Array{x, x, x, short}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unequal lengths: got %v, want ErrInvalidArgument", err)
	}
	var argErr *ArgError
	if _, err := f.Eval(ctx, mem, []arrow.Array{x, i32, x, x}); !errors.As(err, &argErr) || argErr.Pos != 1 {
		t.Errorf("int32 at 1: got %v, want *ArgError at 1", err)
	}
	var arity *ArityError
	if _, err := f.Eval(ctx, mem, []arrow.Array{x, x}); !errors.As(err, &arity) {
		t.Errorf("2 args: got %v, want *ArityError", err)
	}
}

// benchCoords returns four float64 columns of n random coordinates; with
// nulls, about one row in 64 of the first column is null.
func benchCoords(mem memory.Allocator, n int, nulls bool) []arrow.Array {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]arrow.Array, 4)
	for k := range out {
		b := array.NewFloat64Builder(mem)
		b.Reserve(n)
		for i := 0; i < n; i++ {
			if nulls && k == 0 && i%64 == 7 {
				b.UnsafeAppendBoolToBitmap(false)
				continue
			}
			if k%2 == 0 {
				b.UnsafeAppend(r.Float64()*180 - 90)
			} else {
				b.UnsafeAppend(r.Float64()*360 - 180)
			}
		}
		out[k] = b.NewArray()
		b.Release()
	}
	return out
}

func BenchmarkHaversine(b *testing.B) {
	const rows = 1 << 20
	for _, bc := range []struct {
		name  string
		nulls bool
	}{{"nonulls", false}, {"nulls", true}} {
		b.Run(bc.name, func(b *testing.B) {
			mem := memory.NewGoAllocator()
			args := benchCoords(mem, rows, bc.nulls)
			defer func() {
				for _, a := range args {
					a.Release()
				}
			}()
			f := haversineKm{}
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(rows * 4 * arrow.Float64SizeBytes))
			for b.Loop() {
				out, err := f.Eval(ctx, mem, args)
				if err != nil {
					b.Fatal(err)
				}
				out.Release()
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
