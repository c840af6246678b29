// Python functions: registered blobs that run on the worker pool.
package udf

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// PyFunc is a registered Python function. Its blob (see
// docs/worker-protocol.md) is opaque to the node; workers unpickle it.
type PyFunc struct {
	name string
	id   string
	blob []byte
	ret  arrow.DataType
	args []arrow.Field // the declared arguments; nil: not declared
	pool *WorkerPool
	// table: a table function (NewPyTableFunc); see pytable.go.
	table bool
	// conc is the rows a worker runs at once (SetConcurrency); 1 by default.
	conc int
	// hash is the content hash, computed once (pyspec.go).
	hashOnce sync.Once
	hash     string
}

// BlobID is the content address of a blob: the first 16 bytes of its
// SHA-256, in hex.
func BlobID(blob []byte) string {
	sum := sha256.Sum256(blob)
	return hex.EncodeToString(sum[:16])
}

// NewPyFunc makes a Python function that returns ret and runs on pool.
func NewPyFunc(name string, blob []byte, ret arrow.DataType, pool *WorkerPool) (*PyFunc, error) {
	if name == "" {
		return nil, Invalidf("a function needs a name")
	}
	if len(blob) == 0 {
		return nil, Invalidf("%s: empty function blob", name)
	}
	if ret == nil {
		return nil, Invalidf("%s: no result type", name)
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: this node runs no python workers (--workers 0)", ErrNoWorkers)
	}
	return &PyFunc{name: name, id: BlobID(blob), blob: blob, ret: ret, pool: pool, conc: 1}, nil
}

func (f *PyFunc) Name() string { return f.name }

// ID is the blob's content address.
func (f *PyFunc) ID() string { return f.id }

// SetArgs declares the function's arguments, by position: the catalog
// lists them and Bind checks calls against them. Call it before the
// function is registered; without it any arguments are accepted.
func (f *PyFunc) SetArgs(args []arrow.Field) {
	f.args = args
}

// MaxConcurrency bounds SetConcurrency: threads (or coroutines) per worker.
const MaxConcurrency = 1024

// SetConcurrency makes each worker run up to n rows of the function at once
// (docs/worker-protocol.md, LOAD). A function with n > 1 has the ID
// "<blob id>-c<n>", so that workers, which keep loaded functions by ID, never
// run it at another concurrency. Call it before the function is registered.
func (f *PyFunc) SetConcurrency(n int) error {
	if n < 1 || n > MaxConcurrency {
		return Invalidf("%s: concurrency must be from 1 to %d, not %d", f.name, MaxConcurrency, n)
	}
	if n > 1 && f.table {
		return Invalidf("%s: a table function runs one task at a time (concurrency 1)", f.name)
	}
	f.conc = n
	f.id = BlobID(f.blob)
	if n > 1 {
		f.id += "-c" + strconv.Itoa(n)
	}
	return nil
}

// Concurrency is the rows a worker runs at once (1 unless SetConcurrency).
func (f *PyFunc) Concurrency() int { return f.conc }

func (f *PyFunc) Signature() Signature {
	doc := "python function " + f.id + "; arguments are checked by the function itself"
	if f.args != nil {
		doc = "python function " + f.id
	}
	return Signature{
		Args:   f.args,
		Result: arrow.Field{Name: f.name, Type: f.ret, Nullable: true},
		Doc:    doc,
	}
}

// Bind accepts any arguments when none are declared (Python checks its
// own), else the declared types, by position; a dictionary-encoded column
// of the declared type's values is accepted and passed on as it is.
func (f *PyFunc) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if f.args == nil {
		return f.ret, nil
	}
	if err := checkArity(f.name, len(f.args), args); err != nil {
		return nil, err
	}
	for i, t := range args {
		want := f.args[i].Type
		if d, ok := t.(*arrow.DictionaryType); ok {
			t = d.ValueType
		}
		if !arrow.TypeEqual(t, want) {
			return nil, &ArgError{Func: f.name, Pos: i, Expected: want.String(), Got: args[i]}
		}
	}
	return f.ret, nil
}

// Eval ships the arguments to a worker as Arrow IPC and reads the result.
func (f *PyFunc) Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	col, _, err := f.EvalWork(ctx, mem, args)
	return col, err
}

// EvalWork is Eval that also returns the time the worker spent in the
// function.
func (f *PyFunc) EvalWork(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, time.Duration, error) {
	var col arrow.Array
	work, err := f.run(ctx, mem, args, taskContext(ctx), func(b []byte) (err error) {
		col, err = decodeResult(b, mem)
		return err
	})
	if err != nil {
		if col != nil { // decoded, then the call ended
			col.Release()
		}
		return nil, 0, err
	}
	return col, work, nil
}

// run ships args to a worker with the task context taskCtx (nil: none) and
// reads its answer with decode; it returns the time the worker spent in the
// function. A Python exception in err is named after f.
func (f *PyFunc) run(ctx context.Context, mem memory.Allocator, args []arrow.Array, taskCtx []byte, decode func([]byte) error) (time.Duration, error) {
	res, err := f.runTask(ctx, mem, args, taskCtx, nil, decode)
	return time.Duration(res.WorkMs * 1e6), err
}

// runTask ships args to a worker as one task, or as a group of tasks of
// parts rows each (parts not nil), and reads its answer with decode. A
// Python exception in err is named after f.
func (f *PyFunc) runTask(ctx context.Context, mem memory.Allocator, args []arrow.Array, taskCtx []byte, parts []int64, decode func([]byte) error) (Result, error) {
	rows := 0
	if len(args) > 0 {
		rows = args[0].Len()
	}
	// The pool encodes the arguments straight into the worker's arena and
	// decodes the result out of it: one copy each way on this side.
	res, err := f.pool.Run(ctx, Task{FnID: f.id, Name: f.name, Blob: f.blob, Context: taskCtx, Concurrency: f.conc,
		Parts: parts, Encode: func(w io.Writer) error { return encodeArgs(w, args, rows, mem) },
		Decode: decode})
	if err != nil {
		return Result{}, f.named(err)
	}
	return res, nil
}

// named names f in a Python exception err carries.
func (f *PyFunc) named(err error) error {
	var pe *PyError
	if errors.As(err, &pe) {
		pe.Func = f.name
	}
	return err
}

// Parallelism is the number of workers that can run its tasks at once
// (each runs Concurrency rows of a task at once).
func (f *PyFunc) Parallelism() int { return f.pool.Size() }

// encodeArgs writes the arguments to w as an IPC stream of one batch,
// columns named by position.
func encodeArgs(w io.Writer, args []arrow.Array, rows int, mem memory.Allocator) error {
	fields := make([]arrow.Field, len(args))
	for i, a := range args {
		fields[i] = arrow.Field{Name: "_" + strconv.Itoa(i), Type: a.DataType(), Nullable: true}
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), args, int64(rows))
	defer rec.Release()
	iw := ipc.NewWriter(w, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(mem))
	if err := iw.Write(rec); err != nil {
		return err
	}
	return iw.Close()
}

// decodeResult reads the one column of a worker's result stream.
func decodeResult(b []byte, mem memory.Allocator) (arrow.Array, error) {
	rdr, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%w: result is not an Arrow IPC stream: %v", ErrProtocol, err)
	}
	defer rdr.Release()
	if !rdr.Next() {
		return nil, fmt.Errorf("%w: result stream has no batch (%v)", ErrProtocol, rdr.Err())
	}
	rec := rdr.RecordBatch()
	if rec.NumCols() != 1 {
		return nil, fmt.Errorf("%w: result batch has %d columns, want 1", ErrProtocol, rec.NumCols())
	}
	col := rec.Column(0)
	col.Retain()
	return col, nil
}
