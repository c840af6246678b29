// Named failures of the udf package; flight maps them to gRPC codes.
package udf

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

var (
	// ErrUnknownFunction: no function of that name is in the catalog.
	ErrUnknownFunction = errors.New("udf: unknown function")
	// ErrInvalidArgument: wrong arity, wrong types or an argument value the
	// function rejects. Never retryable.
	ErrInvalidArgument = errors.New("udf: invalid argument")
	// ErrDuplicate: a function of that name is already registered.
	ErrDuplicate = errors.New("udf: function already registered")
)

// ArgError reports one argument of the wrong type. It matches
// ErrInvalidArgument with errors.Is.
type ArgError struct {
	Func     string
	Pos      int    // zero-based argument position
	Expected string // e.g. "float64" or "utf8 | binary"
	Got      arrow.DataType
}

func (e *ArgError) Error() string {
	return fmt.Sprintf("udf: %s: argument %d: expected %s, got %s", e.Func, e.Pos, e.Expected, e.Got)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *ArgError) Is(target error) bool { return target == ErrInvalidArgument }

// ArityError reports a call with the wrong number of arguments.
type ArityError struct {
	Func     string
	Expected int
	Got      int
}

func (e *ArityError) Error() string {
	return fmt.Sprintf("udf: %s: expected %d arguments, got %d", e.Func, e.Expected, e.Got)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *ArityError) Is(target error) bool { return target == ErrInvalidArgument }

// Invalidf returns an ErrInvalidArgument with a message for the caller.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
