// Table functions: output of any number of rows per input row, each row
// tied to the input row it came from.
package udf

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TableRowField names the row-index column of a table function's output:
// int32, first, as RisingWave's external table functions lay it out.
const TableRowField = "row"

// TableFunc is a function whose output for a batch of arguments may have
// any number of rows (none included). The scheduler checks what it returns.
type TableFunc interface {
	Func
	// IsTable reports whether the function is a table function; a value
	// of a type that can be one (a PyFunc) may be a scalar function.
	IsTable() bool
	// EvalTable runs the function on argument arrays of equal length. For
	// each output row, rows holds the index within args of the row it came
	// from (ascending); values has the type Bind returned and rows' length.
	// Both are owned by the caller. work is the time the function's own
	// code took (zero when it does not measure it).
	EvalTable(ctx context.Context, mem memory.Allocator, args []arrow.Array) (rows *array.Int32, values arrow.Array, work time.Duration, err error)
}

// AsTable returns fn as a table function, or nil when it is none.
func AsTable(fn Func) TableFunc {
	if t, ok := fn.(TableFunc); ok && t.IsTable() {
		return t
	}
	return nil
}
