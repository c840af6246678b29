// The caller's task context: carried by a call's context.Context to the
// Python tasks it runs.
package udf

import "context"

type taskContextKey struct{}

// WithTaskContext returns ctx carrying raw, the caller's task context (a
// JSON object, e.g. Spark's TaskContext). Python functions evaluated under
// ctx hand it to their worker with each task (docs/worker-protocol.md, TASK
// "context"), where TaskContext.get() reads it.
func WithTaskContext(ctx context.Context, raw []byte) context.Context {
	return context.WithValue(ctx, taskContextKey{}, raw)
}

// taskContext is what WithTaskContext put in ctx, or nil.
func taskContext(ctx context.Context) []byte {
	raw, _ := ctx.Value(taskContextKey{}).([]byte)
	return raw
}
