// Groups of tasks: many small tasks of one batch sent to a worker in one
// round trip, each still a call of the function of its own.
package udf

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Grouped is implemented by Costed functions whose worker can run several
// consecutive tasks of a batch in one round trip (a group), calling the
// function once per task: the frames, the Arrow IPC streams and the
// scheduling a task pays are then paid once per group.
type Grouped interface {
	// Groups says whether this function's tasks may be grouped.
	Groups() bool
	// EvalParts runs the tasks whose rows parts lists, in order, over args
	// (their rows together). It returns the result of every row (a failed
	// task's rows are null), each task's work and each task's error (nil
	// when it succeeded); a non-nil err is the whole group's (its worker
	// died, its answer was not understood), and then nothing else is set.
	EvalParts(ctx context.Context, mem memory.Allocator, args []arrow.Array, parts []int64) (arrow.Array, []time.Duration, []error, error)
}

// Groups is true for a function that runs one row at a time and is not a
// table function: a group's parts run one after another in the worker.
func (f *PyFunc) Groups() bool { return !f.table && f.conc == 1 }

// EvalParts implements Grouped (docs/worker-protocol.md, TASK "parts").
func (f *PyFunc) EvalParts(ctx context.Context, mem memory.Allocator, args []arrow.Array, parts []int64) (arrow.Array, []time.Duration, []error, error) {
	if !f.Groups() {
		return nil, nil, nil, fmt.Errorf("%s: its tasks cannot be grouped", f.name)
	}
	var col arrow.Array
	res, err := f.runTask(ctx, mem, args, taskContext(ctx), parts, func(b []byte) (err error) {
		col, err = decodeResult(b, mem)
		return err
	})
	if err != nil {
		if col != nil {
			col.Release()
		}
		return nil, nil, nil, err
	}
	works := make([]time.Duration, len(parts))
	errs := make([]error, len(parts))
	for i, p := range res.Parts {
		works[i] = time.Duration(p.WorkMs * 1e6)
		if p.Err != nil {
			p.Err.Func = f.name
			errs[i] = p.Err
		}
	}
	return col, works, errs, nil
}
