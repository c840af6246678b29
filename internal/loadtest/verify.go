// --verify: every answer checked against a reference computed here, from
// the input, by package reference (never by asking the target).
package loadtest

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiver-udf/quiver/internal/reference"
)

// expectation is what the answer to one input batch must be.
type expectation interface {
	// check compares the first n rows of out with the expected answers and
	// returns how many differ, with a sample of the first.
	check(out arrow.Array, n int) (wrong int64, sample string)
}

// referenceFor returns how to build the expectation of each input batch
// of the built-in function name; false when there is none (a registered
// Python function, or a name the loadtest does not know).
func referenceFor(name string) (func(in arrow.RecordBatch) (expectation, error), bool) {
	switch name {
	case "identity", "builtin_echo":
		return func(in arrow.RecordBatch) (expectation, error) {
			if in.NumCols() != 1 {
				return nil, fmt.Errorf("%s takes 1 column, the input has %d", name, in.NumCols())
			}
			return sameAs{in.Column(0)}, nil
		}, true
	case "builtin_healthy":
		return func(in arrow.RecordBatch) (expectation, error) {
			return rowsOf(in, 0, func(int) (int32, bool) { return 1, true }, exact[int32])
		}, true
	case "haversine_km":
		return func(in arrow.RecordBatch) (expectation, error) {
			c, err := float64Cols(in, 4)
			if err != nil {
				return nil, err
			}
			return rowsOf(in, 4, func(i int) (float64, bool) {
				return reference.HaversineKm(c[0].Value(i), c[1].Value(i), c[2].Value(i), c[3].Value(i)), true
			}, nearly)
		}, true
	case "sha256_hex":
		return func(in arrow.RecordBatch) (expectation, error) {
			bytesOf, err := binaryCol(in, 0)
			if err != nil {
				return nil, err
			}
			return rowsOf(in, 1, func(i int) (string, bool) { return reference.Sha256Hex(bytesOf(i)), true }, exact[string])
		}, true
	case "levenshtein":
		return stringPairs(reference.Levenshtein, exact[int32]), true
	case "jaro_winkler":
		return stringPairs(reference.JaroWinkler, nearly), true
	case "geohash_encode":
		return func(in arrow.RecordBatch) (expectation, error) {
			c, err := float64Cols(in, 2)
			if err != nil {
				return nil, err
			}
			p, ok := in.Column(2).(*array.Int32)
			if !ok || in.NumCols() != 3 {
				return nil, fmt.Errorf("geohash_encode takes (float64, float64, int32), the input is %s", in.Schema())
			}
			return rowsOf(in, 3, func(i int) (string, bool) {
				lat, lon, prec := c[0].Value(i), c[1].Value(i), p.Value(i)
				if !reference.GeohashValid(lat, lon, prec) {
					return "", false // the call must fail: no answer is right
				}
				return reference.Geohash(lat, lon, int(prec)), true
			}, exact[string])
		}, true
	}
	return nil, false
}

// stringPairs is the reference of a function of two utf8 columns.
func stringPairs[T any](f func(a, b string) T, eq func(a, b T) bool) func(arrow.RecordBatch) (expectation, error) {
	return func(in arrow.RecordBatch) (expectation, error) {
		a, okA := in.Column(0).(*array.String)
		if in.NumCols() != 2 || !okA {
			return nil, fmt.Errorf("want two utf8 columns, the input is %s", in.Schema())
		}
		b, okB := in.Column(1).(*array.String)
		if !okB {
			return nil, fmt.Errorf("want two utf8 columns, the input is %s", in.Schema())
		}
		return rowsOf(in, 2, func(i int) (T, bool) { return f(a.Value(i), b.Value(i)), true }, eq)
	}
}

func float64Cols(in arrow.RecordBatch, n int) ([]*array.Float64, error) {
	if int(in.NumCols()) < n {
		return nil, fmt.Errorf("want %d float64 columns, the input is %s", n, in.Schema())
	}
	cols := make([]*array.Float64, n)
	for i := range cols {
		c, ok := in.Column(i).(*array.Float64)
		if !ok {
			return nil, fmt.Errorf("column %d is %s, want float64", i, in.Column(i).DataType())
		}
		cols[i] = c
	}
	return cols, nil
}

func binaryCol(in arrow.RecordBatch, i int) (func(int) []byte, error) {
	if in.NumCols() != 1 {
		return nil, fmt.Errorf("want one utf8 or binary column, the input is %s", in.Schema())
	}
	switch c := in.Column(i).(type) {
	case *array.String:
		return func(r int) []byte { return []byte(c.Value(r)) }, nil
	case *array.LargeString:
		return func(r int) []byte { return []byte(c.Value(r)) }, nil
	case *array.Binary:
		return c.Value, nil
	case *array.LargeBinary:
		return c.Value, nil
	}
	return nil, fmt.Errorf("column %d is %s, want utf8 or binary", i, in.Column(i).DataType())
}

// rowsOf computes the expected answer of every row of in: null when any
// of the first args columns is null; no right answer when want says so.
func rowsOf[T any](in arrow.RecordBatch, args int, want func(i int) (T, bool), eq func(a, b T) bool) (expectation, error) {
	n := int(in.NumRows())
	e := &rows[T]{want: make([]T, n), state: make([]rowState, n), eq: eq}
	for i := 0; i < n; i++ {
		null := false
		for c := 0; c < args; c++ {
			null = null || in.Column(c).IsNull(i)
		}
		if null {
			e.state[i] = wantNull
			continue
		}
		var ok bool
		if e.want[i], ok = want(i); !ok {
			e.state[i] = wantFailure
		}
	}
	return e, nil
}

type rowState uint8

const (
	wantValue rowState = iota
	wantNull
	wantFailure // the input is invalid: the call should have failed
)

// rows is the expected answers of a function with a fixed result type.
type rows[T any] struct {
	want  []T
	state []rowState
	eq    func(a, b T) bool
}

func (e *rows[T]) check(out arrow.Array, n int) (int64, string) {
	got, ok := out.(interface{ Value(int) T })
	if !ok {
		var zero T
		return int64(n), fmt.Sprintf("the result is %s, want %T values", out.DataType(), zero)
	}
	var wrong int64
	sample := ""
	for i := 0; i < n; i++ {
		bad := false
		switch e.state[i] {
		case wantNull:
			bad = out.IsValid(i)
		case wantFailure:
			bad = true
		default:
			bad = out.IsNull(i) || !e.eq(got.Value(i), e.want[i])
		}
		if bad {
			wrong++
			if sample == "" {
				sample = fmt.Sprintf("row %d: got %s, want %s", i, out.ValueStr(i), e.describe(i))
			}
		}
	}
	return wrong, sample
}

func (e *rows[T]) describe(i int) string {
	switch e.state[i] {
	case wantNull:
		return "null"
	case wantFailure:
		return "the call to fail (invalid input)"
	}
	return fmt.Sprint(e.want[i])
}

func exact[T comparable](a, b T) bool { return a == b }

// nearly compares floats to a relative 1e-9 (the reference computes the
// same formula another way), NaN equal to NaN.
func nearly(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b))
}

// sameAs is an answer that must equal an input column (identity).
type sameAs struct{ col arrow.Array }

func (e sameAs) check(out arrow.Array, n int) (int64, string) {
	if !arrow.TypeEqual(out.DataType(), e.col.DataType()) {
		return int64(n), fmt.Sprintf("the result is %s, the input %s", out.DataType(), e.col.DataType())
	}
	nanEq := array.WithNaNsEqual(true)
	if array.SliceApproxEqual(out, 0, int64(n), e.col, 0, int64(n), nanEq, array.WithAbsTolerance(0)) {
		return 0, ""
	}
	var wrong int64
	sample := ""
	for i := 0; i < n; i++ {
		if !array.SliceApproxEqual(out, int64(i), int64(i+1), e.col, int64(i), int64(i+1), nanEq, array.WithAbsTolerance(0)) {
			wrong++
			if sample == "" {
				sample = fmt.Sprintf("row %d: got %s, want %s", i, out.ValueStr(i), e.col.ValueStr(i))
			}
		}
	}
	return wrong, sample
}
