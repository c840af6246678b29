// Python table functions: a registered blob whose worker answers with a
// row-index column and a values column.
package udf

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// NewPyTableFunc makes a Python table function whose values have type ret:
// its worker answers each task with any number of rows, each tied to an
// argument row (docs/worker-protocol.md, kind "table").
func NewPyTableFunc(name string, blob []byte, ret arrow.DataType, pool *WorkerPool) (*PyFunc, error) {
	f, err := NewPyFunc(name, blob, ret, pool)
	if err != nil {
		return nil, err
	}
	f.table = true
	return f, nil
}

// IsTable reports whether f was registered as a table function.
func (f *PyFunc) IsTable() bool { return f.table }

// EvalTable ships the arguments to a worker and reads its row indices and
// values. The scheduler checks them against the task's rows.
func (f *PyFunc) EvalTable(ctx context.Context, mem memory.Allocator, args []arrow.Array) (*array.Int32, arrow.Array, time.Duration, error) {
	var (
		idx  *array.Int32
		vals arrow.Array
	)
	work, err := f.run(ctx, mem, args, taskContext(ctx), func(b []byte) (err error) {
		idx, vals, err = decodeTable(b, mem)
		return err
	})
	if err != nil {
		if idx != nil {
			idx.Release()
			vals.Release()
		}
		return nil, nil, 0, err
	}
	return idx, vals, work, nil
}

// decodeTable reads a table function's result stream: one batch of two
// columns, the int32 row indices and the values.
func decodeTable(b []byte, mem memory.Allocator) (*array.Int32, arrow.Array, error) {
	rdr, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(mem))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: result is not an Arrow IPC stream: %v", ErrProtocol, err)
	}
	defer rdr.Release()
	if !rdr.Next() {
		return nil, nil, fmt.Errorf("%w: result stream has no batch (%v)", ErrProtocol, rdr.Err())
	}
	rec := rdr.RecordBatch()
	if rec.NumCols() != 2 {
		return nil, nil, fmt.Errorf("%w: a table function's result has %d columns, want 2 (%s int32, values)", ErrProtocol, rec.NumCols(), TableRowField)
	}
	idx, ok := rec.Column(0).(*array.Int32)
	if !ok {
		return nil, nil, fmt.Errorf("%w: a table function's row indices are %s, want int32", ErrProtocol, rec.Column(0).DataType())
	}
	idx.Retain()
	vals := rec.Column(1)
	vals.Retain()
	return idx, vals, nil
}
