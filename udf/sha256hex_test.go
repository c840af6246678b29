// Tests for sha256_hex.
package udf

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestSha256Hex(t *testing.T) {
	tests := []struct {
		in   any // string, []byte or nil
		want any // string or nil
	}{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"The quick brown fox jumps over the lazy dog", "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
		{nil, nil},
		{"café", "850f7dc43910ff890f8879c0ed26fe697c93a067ad93a7d50f466a7028a9bf4e"},
		{"日本語", "77710aedc74ecfa33685e33a6c7df5cc83004da1bdcef7fb280f5c2b2e97e0a5"},
		{"👍🏽", "01a5f86b6044eee022d2ee109e38bd9d845e7a650fb9f4a413e60aeb858ecae4"},
		{nil, nil},
	}
	binaryOnly := []struct {
		in   any
		want any
	}{
		{[]byte{0x00, 0xff}, "06eb7d6a69ee19e5fbdf749018d3d2abfa04bcbd1365db312eb86dc7169389b8"},
	}
	for _, dt := range []arrow.DataType{
		arrow.BinaryTypes.String, arrow.BinaryTypes.Binary,
		arrow.BinaryTypes.LargeString, arrow.BinaryTypes.LargeBinary,
	} {
		cases := tests
		if dt.ID() == arrow.BINARY || dt.ID() == arrow.LARGE_BINARY {
			cases = append(cases[:len(cases):len(cases)], binaryOnly...)
		}
		rows := make([][]any, len(cases))
		for i, tc := range cases {
			rows[i] = []any{tc.in}
		}
		for _, pad := range pads {
			t.Run(dt.String()+"/"+padName(pad), func(t *testing.T) {
				mem := newMem(t)
				out, err := evalRows(t, mem, sha256Hex{}, []arrow.DataType{dt}, pad, rows)
				if err != nil {
					t.Fatal(err)
				}
				defer out.Release()
				got := out.(*array.String)
				for i, tc := range cases {
					if tc.want == nil {
						if got.IsValid(i) {
							t.Errorf("row %d: got %q, want null", i, got.Value(i))
						}
						continue
					}
					if got.IsNull(i) || got.Value(i) != tc.want {
						t.Errorf("row %d (%q): got %q (null %v), want %q", i, tc.in, got.Value(i), got.IsNull(i), tc.want)
					}
				}
			})
		}
	}
}

func TestSha256HexBind(t *testing.T) {
	f := sha256Hex{}
	for _, dt := range []arrow.DataType{
		arrow.BinaryTypes.String, arrow.BinaryTypes.Binary,
		arrow.BinaryTypes.LargeString, arrow.BinaryTypes.LargeBinary,
	} {
		if rt, err := f.Bind([]arrow.DataType{dt}); err != nil || !arrow.TypeEqual(rt, arrow.BinaryTypes.String) {
			t.Errorf("Bind(%s) = %v, %v; want utf8", dt, rt, err)
		}
	}

	_, err := f.Bind([]arrow.DataType{arrow.PrimitiveTypes.Int64})
	var argErr *ArgError
	if !errors.As(err, &argErr) {
		t.Fatalf("Bind(int64): got %v, want *ArgError", err)
	}
	if argErr.Pos != 0 || argErr.Expected != "utf8 | binary" || !arrow.TypeEqual(argErr.Got, arrow.PrimitiveTypes.Int64) {
		t.Errorf("ArgError = %+v, want Pos 0, Expected %q, Got int64", argErr, "utf8 | binary")
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is(%v, ErrInvalidArgument) = false", err)
	}

	_, err = f.Bind(nil)
	var arity *ArityError
	if !errors.As(err, &arity) || arity.Expected != 1 || arity.Got != 0 {
		t.Errorf("Bind(): got %v, want *ArityError 1/0", err)
	}
}

func TestSha256HexEvalRejectsBadType(t *testing.T) {
	mem := newMem(t)
	x := column(t, mem, arrow.PrimitiveTypes.Int32, 0, []any{1})
	defer x.Release()
	_, err := sha256Hex{}.Eval(context.Background(), mem, []arrow.Array{x})
	var argErr *ArgError
	if !errors.As(err, &argErr) || argErr.Pos != 0 || argErr.Expected != "utf8 | binary" {
		t.Fatalf("Eval(int32): got %v, want *ArgError expecting utf8 | binary", err)
	}
}
