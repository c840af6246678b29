// identity(x): returns its argument unchanged, for any type.
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type identity struct{}

func (identity) Name() string { return "identity" }

func (identity) Signature() Signature {
	return Signature{
		Args:   []arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}},
		Result: arrow.Field{Name: "identity", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		Doc:    "returns x unchanged; x may be of any type",
	}
}

func (identity) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkArity("identity", 1, args); err != nil {
		return nil, err
	}
	return args[0], nil
}

// Eval shares the argument's buffers: no copy.
func (identity) Eval(_ context.Context, _ memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	args[0].Retain()
	return args[0], nil
}
