// Call options and binding a function to a call's input schema.
package scheduler

import (
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/quiver-udf/quiver/udf"
)

// OnError says what a failed row does to its call.
type OnError int

const (
	// OnErrorRaise fails the whole call at the first failed task.
	OnErrorRaise OnError = iota
	// OnErrorNull makes rows whose evaluation failed null and reports their
	// error message in an extra utf8 column named "error".
	OnErrorNull
)

// ErrorColumn is the name of the extra column of OnErrorNull calls.
const ErrorColumn = "error"

func (o OnError) String() string {
	if o == OnErrorNull {
		return "null"
	}
	return "raise"
}

// ParseOnError reads "raise" or "null".
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "", "raise":
		return OnErrorRaise, nil
	case "null":
		return OnErrorNull, nil
	}
	return 0, udf.Invalidf("on-error must be \"raise\" or \"null\", got %q", s)
}

// DefaultRetries is how often a task whose executor died is retried when
// the caller does not say.
const DefaultRetries = 3

// CallOptions are the per-call settings a client sends.
type CallOptions struct {
	// RowsPerTask is the size of a task in rows; zero picks TaskRows' default.
	RowsPerTask int64
	// Retries is how often a task whose executor died is retried.
	Retries int
	// OnError says what a failed row does.
	OnError OnError
	// Timeout bounds the whole call; zero means none.
	Timeout time.Duration
	// Independent says each row is a job of its own (the task API): with
	// RowsPerTask zero, tasks are sized by IndependentTaskRows.
	Independent bool
	// TaskContext is the caller's task context (a JSON object, e.g. Spark's
	// TaskContext), handed to Python functions with each task; nil if none.
	TaskContext []byte
	// Table asks for table-function output (table.go): a scalar function's
	// rows come back with their row indices. A table function's always do.
	Table bool
	// Spilled: the call is a task a peer spilled here (quiver-spilled). Its
	// tasks run here, never forwarded, or the call is refused with
	// ErrSpillBusy when the lane's queue is full.
	Spilled bool
}

// Bound is a function checked against a call's input schema.
type Bound struct {
	Func    udf.Func
	In      *arrow.Schema
	Out     *arrow.Schema
	OutType arrow.DataType
	Opts    CallOptions
	// Table: the output has the row-index column first; TableFunc
	// is the function as one (nil: a scalar function called as a table).
	Table     bool
	TableFunc udf.TableFunc

	decode bool // dictionary-encoded columns are decoded before the function sees them
}

// Bind checks the input schema's columns against fn's signature and builds
// the output schema: one field named after the function, plus the error
// column under OnErrorNull; a table call (a table function, or
// opts.Table) has the int32 row-index column "row" first.
func Bind(fn udf.Func, in *arrow.Schema, opts CallOptions) (*Bound, error) {
	if _, nullary := fn.(udf.Nullary); in.NumFields() == 0 && !nullary {
		return nil, udf.Invalidf("%s: the input has no columns; the columns of a batch are the function's arguments, by position", fn.Name())
	}
	out, decode, err := bindDecoded(fn, in)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%w: %s bound to no type", ErrBadResult, fn.Name())
	}
	tf := udf.AsTable(fn)
	table := opts.Table || tf != nil
	var fields []arrow.Field
	if table {
		fields = append(fields, arrow.Field{Name: udf.TableRowField, Type: arrow.PrimitiveTypes.Int32})
	}
	fields = append(fields, arrow.Field{Name: fn.Name(), Type: out, Nullable: true})
	if opts.OnError == OnErrorNull {
		fields = append(fields, arrow.Field{Name: ErrorColumn, Type: arrow.BinaryTypes.String, Nullable: true})
	}
	return &Bound{Func: fn, In: in, Out: arrow.NewSchema(fields, nil), OutType: out, Opts: opts,
		Table: table, TableFunc: tf, decode: decode}, nil
}
