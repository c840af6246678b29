// The Func interface and the signature every function publishes.
package udf

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Func is one vectorized function over Arrow arrays.
//
// Implementations must be safe for concurrent use: the scheduler calls Eval
// on many slices of one batch at once.
type Func interface {
	// Name is the name callers use in the descriptor PATH [name].
	Name() string
	// Signature describes the canonical argument and result fields, as
	// published by the catalog (GetFlightInfo, ListFlights).
	Signature() Signature
	// Bind checks the argument types of a call and returns the result type.
	// Errors are *ArityError, *ArgError or wrap ErrInvalidArgument.
	Bind(args []arrow.DataType) (arrow.DataType, error)
	// Eval computes the result for argument arrays of equal length, which
	// have the types Bind accepted. The result has the same length and the
	// type Bind returned, and is owned by the caller (who releases it).
	// Eval must not retain or release args.
	Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error)
}

// Signature is what a function publishes about itself.
type Signature struct {
	// Args are the canonical argument fields, by position. A function that
	// accepts several types (sha256_hex) lists the first it accepts here and
	// says the rest in Doc; one that accepts any type (identity) lists an
	// AnyField.
	Args []arrow.Field
	// Result is the canonical result field.
	Result arrow.Field
	// Doc is a one-line description for people.
	Doc string
}

// Metadata keys of a field that stands for any type (AnyField).
const (
	// MetaExtension is Databend's key for its extension types.
	MetaExtension = "Extension"
	// MetaAnyType says, for people, which types the field takes.
	MetaAnyType = "quiver-type"
)

// AnyField is the field a function advertises for an argument (or result)
// of any type. Arrow has no such type, so it takes the form Databend uses for
// its own any-type, VARIANT: large_binary with metadata Extension=Variant,
// which Databend's CREATE FUNCTION accepts. The metadata key quiver-type
// says what the field really takes (e.g. "any"). Binding does not use it:
// the function's Bind accepts every type.
func AnyField(name, takes string) arrow.Field {
	md := arrow.NewMetadata([]string{MetaExtension, MetaAnyType}, []string{"Variant", takes})
	return arrow.Field{Name: name, Type: arrow.BinaryTypes.LargeBinary, Nullable: true, Metadata: md}
}

// Nullary is a function of no arguments. Its calls' batches have no
// columns, only a row count; the scheduler calls EvalRows in place of Eval.
type Nullary interface {
	Func
	// EvalRows returns a result of rows rows.
	EvalRows(ctx context.Context, mem memory.Allocator, rows int) (arrow.Array, error)
}

// checkArity returns an *ArityError when got differs from want.
func checkArity(name string, want int, args []arrow.DataType) error {
	if len(args) != want {
		return &ArityError{Func: name, Expected: want, Got: len(args)}
	}
	return nil
}

// checkTypes checks that every argument has exactly the type its position expects.
func checkTypes(name string, want []arrow.DataType, args []arrow.DataType) error {
	if err := checkArity(name, len(want), args); err != nil {
		return err
	}
	for i, t := range args {
		if !arrow.TypeEqual(t, want[i]) {
			return &ArgError{Func: name, Pos: i, Expected: want[i].String(), Got: t}
		}
	}
	return nil
}

// Costed is implemented by functions that run on the Python worker pool
// and measure their work, so that the scheduler can run their tasks against
// the pool's capacity and size them by cost: heavy functions fan out over
// every worker, cheap ones run as few tasks as possible. The function only
// reports; the scheduler keeps the estimate.
type Costed interface {
	Func
	// ID names what the function costs: functions with one ID (the content
	// address of their code) cost the same.
	ID() string
	// Parallelism is how many tasks of the function can run at once.
	Parallelism() int
	// EvalWork is Eval that also returns the time the function's own code
	// spent on the arguments (in a worker, without transport or queueing).
	EvalWork(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, time.Duration, error)
}

// Concurrent is implemented by Costed functions that run several rows at
// once inside one worker (a function that waits: an HTTP call, a database).
// Concurrency is the rows (or slices of rows) one worker keeps in flight;
// 1 means one at a time. The scheduler cuts such a function's tasks into
// groups of Concurrency rows (ConcurrentTaskRows), one task per worker.
type Concurrent interface {
	Concurrency() int
}

// Whole is implemented by native functions that gain nothing from a batch
// cut into tasks: their work is no more than the copy that joins the tasks'
// results back into one column (identity shares its input's buffers). The
// scheduler runs such a batch as one task unless the call asks for a task
// size.
type Whole interface {
	Whole() bool
}
