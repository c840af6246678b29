// Tests for geohash_encode.
package udf

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestGeohashEncode(t *testing.T) {
	tests := []struct {
		lat, lon, precision any
		want                any // string or nil
	}{
		{57.64911, 10.40744, 11, "u4pruydqqvj"},
		{42.6, -5.6, 5, "ezs42"},
		{37.8324, 112.5584, 9, "ww8p1r4t8"},
		{-33.8688, 151.2093, 7, "r3gx2f7"},
		{57.64911, 10.40744, 1, "u"},
		{0.0, 0.0, 1, "s"},
		{90.0, 180.0, 12, "zzzzzzzzzzzz"},
		{-90.0, -180.0, 12, "000000000000"},
		{nil, 10.0, 5, nil},
		{10.0, nil, 5, nil},
		{10.0, 10.0, nil, nil},
		// A null anywhere makes the row null, bad values in it included.
		{math.NaN(), 10.0, nil, nil},
		{nil, 10.0, 99, nil},
	}
	rows := make([][]any, len(tests))
	for i, tc := range tests {
		rows[i] = []any{tc.lat, tc.lon, tc.precision}
	}
	f := geohashEncode{}
	for _, pad := range pads {
		t.Run(padName(pad), func(t *testing.T) {
			mem := newMem(t)
			out, err := evalRows(t, mem, f, argTypes(f), pad, rows)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			got := out.(*array.String)
			for i, tc := range tests {
				if tc.want == nil {
					if got.IsValid(i) {
						t.Errorf("%v: got %q, want null", rows[i], got.Value(i))
					}
					continue
				}
				if got.IsNull(i) || got.Value(i) != tc.want {
					t.Errorf("%v: got %q (null %v), want %q", rows[i], got.Value(i), got.IsNull(i), tc.want)
				}
			}
		})
	}
}

// TestGeohashEncodeInvalid checks that a bad value fails the call with
// ErrInvalidArgument naming the row, counted from the start of the slice.
func TestGeohashEncodeInvalid(t *testing.T) {
	tests := []struct {
		name                string
		lat, lon, precision any
	}{
		{"precision 0", 1.0, 1.0, 0},
		{"precision 13", 1.0, 1.0, 13},
		{"negative precision", 1.0, 1.0, -1},
		{"lat above 90", 90.000001, 1.0, 5},
		{"lat below -90", -91.0, 1.0, 5},
		{"lon above 180", 1.0, 180.5, 5},
		{"lon below -180", 1.0, -181.0, 5},
		{"NaN lat", math.NaN(), 1.0, 5},
		{"NaN lon", 1.0, math.NaN(), 5},
		{"infinite lon", 1.0, math.Inf(1), 5},
	}
	f := geohashEncode{}
	for _, tc := range tests {
		for _, pad := range pads {
			t.Run(tc.name+"/"+padName(pad), func(t *testing.T) {
				mem := newMem(t)
				rows := [][]any{
					{1.0, 1.0, 5},
					{nil, 1.0, 5},
					{tc.lat, tc.lon, tc.precision}, // row 2
					{1.0, 1.0, 5},
				}
				out, err := evalRows(t, mem, f, argTypes(f), pad, rows)
				if err == nil {
					out.Release()
					t.Fatal("Eval succeeded, want an error")
				}
				if !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
				}
				if !strings.Contains(err.Error(), "row 2") {
					t.Errorf("error %q does not name row 2", err)
				}
			})
		}
	}
}

func TestGeohashEncodeBind(t *testing.T) {
	f := geohashEncode{}
	f64, i32, i64 := arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64
	if rt, err := f.Bind([]arrow.DataType{f64, f64, i32}); err != nil || !arrow.TypeEqual(rt, arrow.BinaryTypes.String) {
		t.Fatalf("Bind(float64, float64, int32) = %v, %v", rt, err)
	}
	_, err := f.Bind([]arrow.DataType{f64, f64, i64})
	var argErr *ArgError
	if !errors.As(err, &argErr) || argErr.Pos != 2 || argErr.Expected != "int32" || !arrow.TypeEqual(argErr.Got, i64) {
		t.Fatalf("Bind(precision int64): got %v, want *ArgError at 2 expecting int32", err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}
	var arity *ArityError
	if _, err := f.Bind([]arrow.DataType{f64, f64}); !errors.As(err, &arity) || arity.Expected != 3 || arity.Got != 2 {
		t.Errorf("Bind(2 args): got %v, want *ArityError 3/2", err)
	}
}
