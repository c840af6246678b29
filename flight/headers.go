// Call options from gRPC headers.
package flight

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// Headers a client may send with a call.
const (
	HeaderRowsPerTask = "quiver-rows-per-task"
	HeaderRetries     = "quiver-retries"
	HeaderOnError     = "quiver-on-error"
	HeaderTimeoutMs   = "quiver-timeout-ms"
	// HeaderTaskContext is the caller's task context, a JSON object that
	// Python functions receive with each task (docs/protocol.md).
	HeaderTaskContext = "quiver-task-context"
	// HeaderTableFunction "1" asks for a table call: the output has the
	// row-index column "row" first (docs/protocol.md).
	HeaderTableFunction = "quiver-table-function"
)

// Headers of peer calls: a task one node spills to another
// (docs/protocol.md, "Peer calls"; peer.go sends them).
const (
	// HeaderSpilled "1": the call is a task a peer spilled here. It runs
	// here or is refused (ResourceExhausted), never forwarded.
	HeaderSpilled = "quiver-spilled"
	// HeaderFuncHash names a registered Python function by its content
	// hash (udf.PyFunc.Hash); the descriptor still carries its name.
	HeaderFuncHash = "quiver-func-hash"
	// HeaderOrigin is the Flight address (host:port) of the node that
	// spilled the call, from which a missing function is fetched.
	HeaderOrigin = "quiver-origin"
	// HeaderTaskError (binary) is set on the trailer of a spilled call
	// that failed in the function itself: the function's error, without
	// the call's row range, which the origin adds.
	HeaderTaskError = "quiver-task-error-bin"
	// HeaderTaskAttempts is how many evaluations the failed task made.
	HeaderTaskAttempts = "quiver-task-attempts"
)

// Limits on header values.
const (
	maxRowsPerTask = 1 << 31
	maxRetries     = 100
	maxTaskContext = 64 << 10
)

// callOptions reads the call options from ctx's incoming metadata.
func callOptions(ctx context.Context) (scheduler.CallOptions, error) {
	var o scheduler.CallOptions
	md, _ := metadata.FromIncomingContext(ctx)
	n, err := intHeader(md, HeaderRowsPerTask, 1, maxRowsPerTask)
	if err != nil {
		return o, err
	}
	o.RowsPerTask = n
	if n, err = intHeader(md, HeaderRetries, 0, maxRetries); err != nil {
		return o, err
	}
	o.Retries = int(n)
	if lastHeader(md, HeaderRetries) == "" {
		o.Retries = scheduler.DefaultRetries
	}
	if n, err = intHeader(md, HeaderTimeoutMs, 1, int64(24*time.Hour/time.Millisecond)); err != nil {
		return o, err
	}
	o.Timeout = time.Duration(n) * time.Millisecond
	if o.OnError, err = scheduler.ParseOnError(lastHeader(md, HeaderOnError)); err != nil {
		return o, err
	}
	if o.TaskContext, err = taskContextHeader(lastHeader(md, HeaderTaskContext)); err != nil {
		return o, err
	}
	switch v := lastHeader(md, HeaderTableFunction); v {
	case "", "0":
	case "1":
		o.Table = true
	default:
		return o, udf.Invalidf("header %s must be 0 or 1, got %q", HeaderTableFunction, v)
	}
	switch v := lastHeader(md, HeaderSpilled); v {
	case "", "0":
	case "1":
		o.Spilled = true
	default:
		return o, udf.Invalidf("header %s must be 0 or 1, got %q", HeaderSpilled, v)
	}
	return o, nil
}

// taskContextHeader checks a task context header: a JSON object of at most
// maxTaskContext bytes; absent is nil.
func taskContextHeader(v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > maxTaskContext {
		return nil, udf.Invalidf("header %s has %d bytes, at most %d are allowed", HeaderTaskContext, len(v), maxTaskContext)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &obj); err != nil || obj == nil {
		return nil, udf.Invalidf("header %s must be a JSON object, got %.40q", HeaderTaskContext, v)
	}
	return []byte(v), nil
}

// intHeader parses header key as an integer in [lo, hi]; absent is 0.
func intHeader(md metadata.MD, key string, lo, hi int64) (int64, error) {
	v := lastHeader(md, key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, udf.Invalidf("header %s must be an integer in [%d, %d], got %q", key, lo, hi, v)
	}
	return n, nil
}

func lastHeader(md metadata.MD, key string) string {
	vs := md.Get(key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}
