// identity(x): returns its argument unchanged, for any type.
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type identity struct{}

func (identity) Name() string { return "identity" }

// Signature advertises the generic form (see AnyField): x of any type, the
// result of x's type.
func (identity) Signature() Signature {
	return Signature{
		Args:   []arrow.Field{AnyField("x", "any")},
		Result: AnyField("identity", "the type of x"),
		Doc:    "returns x unchanged; x may be of any type and the result has x's type",
	}
}

func (identity) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkArity("identity", 1, args); err != nil {
		return nil, err
	}
	return args[0], nil
}

// Whole: a batch cut into tasks would cost a copy to join them again.
func (identity) Whole() bool { return true }

// Eval shares the argument's buffers: no copy.
func (identity) Eval(_ context.Context, _ memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	args[0].Retain()
	return args[0], nil
}
