// builtin_healthy and builtin_echo: the functions Databend's UDF client
// probes a server with (health_check, echo, list_functions).
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// builtinHealthy() returns 1 (int32) for every row; it takes no arguments.
type builtinHealthy struct{}

func (builtinHealthy) Name() string { return "builtin_healthy" }

func (builtinHealthy) Signature() Signature {
	return Signature{
		Result: arrow.Field{Name: "builtin_healthy", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		Doc:    "returns 1 for every row: the node serves calls (Databend's health check)",
	}
}

func (builtinHealthy) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkArity("builtin_healthy", 0, args); err != nil {
		return nil, err
	}
	return arrow.PrimitiveTypes.Int32, nil
}

// Eval is never called with arguments (Bind refuses them); if it is, it
// refuses them too. Calls without columns go through EvalRows.
func (f builtinHealthy) Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	if len(args) != 0 {
		return nil, &ArityError{Func: f.Name(), Expected: 0, Got: len(args)}
	}
	return f.EvalRows(ctx, mem, 0)
}

func (builtinHealthy) EvalRows(_ context.Context, mem memory.Allocator, rows int) (arrow.Array, error) {
	b := array.NewInt32Builder(mem)
	defer b.Release()
	b.Reserve(rows)
	for i := 0; i < rows; i++ {
		b.UnsafeAppend(1)
	}
	return b.NewArray(), nil
}

// builtinEcho(s) returns its string argument unchanged.
type builtinEcho struct{}

func (builtinEcho) Name() string { return "builtin_echo" }

// Signature lists large_utf8, the type Databend's VARCHAR travels as.
func (builtinEcho) Signature() Signature {
	return Signature{
		Args:   []arrow.Field{{Name: "s", Type: arrow.BinaryTypes.LargeString, Nullable: true}},
		Result: arrow.Field{Name: "builtin_echo", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		Doc:    "returns s unchanged; s may be large_utf8, utf8 or utf8_view (Databend's echo probe)",
	}
}

func (builtinEcho) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkArity("builtin_echo", 1, args); err != nil {
		return nil, err
	}
	switch args[0].ID() {
	case arrow.LARGE_STRING, arrow.STRING, arrow.STRING_VIEW:
		return args[0], nil
	}
	return nil, &ArgError{Func: "builtin_echo", Pos: 0, Expected: "large_utf8 | utf8 | utf8_view", Got: args[0]}
}

// Eval shares the argument's buffers: no copy.
func (builtinEcho) Eval(_ context.Context, _ memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	args[0].Retain()
	return args[0], nil
}
