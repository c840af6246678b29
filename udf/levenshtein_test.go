// Tests and benchmark for levenshtein.
package udf

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/internal/reference"
)

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b any // string or nil
		want any // int or nil
	}{
		{"kitten", "sitting", 3},
		{"sitting", "kitten", 3},
		{"saturday", "sunday", 3},
		{"flaw", "lawn", 2},
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"abc", "abc", 0},
		{"abc", "xyz", 3},
		{"a", "b", 1},
		{"ab", "ba", 2},
		{"prefix-middle-suffix", "prefix-MIDDLE-suffix", 6},
		{"café", "cafe", 1},   // é is one code point, two bytes
		{"naïve", "naive", 1}, // ï likewise
		{"日本語", "日本", 1},
		{"日本語", "中文", 3},
		{"👍🏽", "👍", 1}, // the skin-tone modifier is a code point of its own
		{"🙂🙃", "🙃🙂", 2},
		{"a🙂b", "a🙃b", 1},
		{nil, "abc", nil},
		{"abc", nil, nil},
		{nil, nil, nil},
		{"", nil, nil},
	}
	rows := make([][]any, len(tests))
	for i, tc := range tests {
		rows[i] = []any{tc.a, tc.b}
	}
	f := levenshtein{}
	for _, pad := range pads {
		t.Run(padName(pad), func(t *testing.T) {
			mem := newMem(t)
			out, err := evalRows(t, mem, f, argTypes(f), pad, rows)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			got := out.(*array.Int32)
			for i, tc := range tests {
				if tc.want == nil {
					if got.IsValid(i) {
						t.Errorf("(%v, %v): got %d, want null", tc.a, tc.b, got.Value(i))
					}
					continue
				}
				if got.IsNull(i) || got.Value(i) != int32(tc.want.(int)) {
					t.Errorf("(%q, %q): got %d (null %v), want %d", tc.a, tc.b, got.Value(i), got.IsNull(i), tc.want)
				}
			}
		})
	}
}

// TestLevenshteinMatchesNaive checks random strings against the textbook
// full-matrix definition.
func TestLevenshteinMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("abcé日🙂")
	randStr := func() string {
		rs := make([]rune, r.IntN(12))
		for i := range rs {
			rs[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(rs)
	}
	var s levenshteinScratch
	for range 2000 {
		a, b := randStr(), randStr()
		if got, want := s.distance(a, b), reference.Levenshtein(a, b); got != want {
			t.Fatalf("distance(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
}

func TestLevenshteinBind(t *testing.T) {
	f := levenshtein{}
	utf8, large := arrow.BinaryTypes.String, arrow.BinaryTypes.LargeString
	if rt, err := f.Bind([]arrow.DataType{utf8, utf8}); err != nil || !arrow.TypeEqual(rt, arrow.PrimitiveTypes.Int32) {
		t.Fatalf("Bind(utf8, utf8) = %v, %v", rt, err)
	}
	_, err := f.Bind([]arrow.DataType{utf8, large})
	var argErr *ArgError
	if !errors.As(err, &argErr) || argErr.Pos != 1 || argErr.Expected != "utf8" {
		t.Fatalf("Bind(utf8, large_utf8): got %v, want *ArgError at 1 expecting utf8", err)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}
	var arity *ArityError
	if _, err := f.Bind([]arrow.DataType{utf8, utf8, utf8}); !errors.As(err, &arity) || arity.Expected != 2 || arity.Got != 3 {
		t.Errorf("Bind(3 args): got %v, want *ArityError 2/3", err)
	}
}

func TestLevenshteinCancelled(t *testing.T) {
	mem := newMem(t)
	a := column(t, mem, arrow.BinaryTypes.String, 0, []any{"a", "b"})
	defer a.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (levenshtein{}).Eval(ctx, mem, []arrow.Array{a, a}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Eval on a cancelled context: got %v, want context.Canceled", err)
	}
}

// benchWords returns a utf8 column of n words of 4 to 19 letters, some
// accented.
func benchWords(mem memory.Allocator, n int, seed uint64) arrow.Array {
	r := rand.New(rand.NewPCG(seed, 5))
	letters := []rune("abcdefghijklmnopqrstuvwxyzéü")
	b := array.NewStringBuilder(mem)
	defer b.Release()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.Reset()
		for k := 4 + r.IntN(16); k > 0; k-- {
			sb.WriteRune(letters[r.IntN(len(letters))])
		}
		b.Append(sb.String())
	}
	return b.NewArray()
}

func BenchmarkLevenshtein(b *testing.B) {
	const rows = 1 << 16
	mem := memory.NewGoAllocator()
	x, y := benchWords(mem, rows, 1), benchWords(mem, rows, 2)
	defer x.Release()
	defer y.Release()
	args := []arrow.Array{x, y}
	f := levenshtein{}
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
