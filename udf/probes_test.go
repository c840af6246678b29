// Tests of builtin_healthy, builtin_echo and the any-type field identity advertises.
package udf

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

func TestEchoBind(t *testing.T) {
	for _, dt := range []arrow.DataType{arrow.BinaryTypes.LargeString, arrow.BinaryTypes.String, arrow.BinaryTypes.StringView} {
		got, err := builtinEcho{}.Bind([]arrow.DataType{dt})
		if err != nil || !arrow.TypeEqual(got, dt) {
			t.Errorf("Bind(%s) = %v, %v; want %s", dt, got, err, dt)
		}
	}
	_, err := builtinEcho{}.Bind([]arrow.DataType{arrow.PrimitiveTypes.Int64})
	var ae *ArgError
	if !errors.As(err, &ae) || ae.Pos != 0 {
		t.Errorf("Bind(int64): %v, want an ArgError for argument 0", err)
	}
	if _, err := (builtinHealthy{}).Bind([]arrow.DataType{arrow.PrimitiveTypes.Int64}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("builtin_healthy with an argument: %v, want ErrInvalidArgument", err)
	}
}

func TestHealthyEvalRows(t *testing.T) {
	mem := newMem(t)
	out, err := builtinHealthy{}.EvalRows(context.Background(), mem, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	col := out.(*array.Int32)
	if col.Len() != 4 || col.NullN() != 0 || col.Value(0) != 1 || col.Value(3) != 1 {
		t.Errorf("EvalRows(4) = %v, want four ones", col)
	}
}

// TestIdentityAdvertisesAnyType: identity's fields are Databend's VARIANT
// form, say "any", and Bind still takes every type.
func TestIdentityAdvertisesAnyType(t *testing.T) {
	sig := identity{}.Signature()
	for _, f := range append(append([]arrow.Field{}, sig.Args...), sig.Result) {
		ext, ok1 := f.Metadata.GetValue(MetaExtension)
		takes, ok2 := f.Metadata.GetValue(MetaAnyType)
		if !ok1 || ext != "Variant" || !ok2 || takes == "" || f.Type.ID() != arrow.LARGE_BINARY {
			t.Errorf("field %v: want large_binary with Extension=Variant and %s", f, MetaAnyType)
		}
	}
	for _, dt := range []arrow.DataType{arrow.PrimitiveTypes.Int64, arrow.BinaryTypes.String, arrow.ListOf(arrow.PrimitiveTypes.Float64)} {
		if got, err := (identity{}).Bind([]arrow.DataType{dt}); err != nil || !arrow.TypeEqual(got, dt) {
			t.Errorf("Bind(%s) = %v, %v", dt, got, err)
		}
	}
}
