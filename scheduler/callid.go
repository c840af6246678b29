// Call ids: the short id that names one call in logs and error messages.
package scheduler

import (
	"context"
	"encoding/hex"
	"math/rand/v2"

	"go.uber.org/zap"
)

type callIDKey struct{}

// NewCallID returns a short random id (8 hex digits) for one call.
func NewCallID() string {
	var b [4]byte
	v := rand.Uint32()
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return hex.EncodeToString(b[:])
}

// WithCallID returns ctx carrying the call's id: Run names the call by it
// in the logs of its tasks' failures and retries.
func WithCallID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, callIDKey{}, id)
}

// CallID is the id ctx carries, "" when none.
func CallID(ctx context.Context) string {
	id, _ := ctx.Value(callIDKey{}).(string)
	return id
}

// taskFailed counts a task that failed for good and logs it, once per
// task (not per row), with the call's id; it returns te.
func (c *call) taskFailed(te *TaskError) *TaskError {
	c.s.stats.tasksFailed.Add(1)
	c.s.log.Debug("task failed", zap.String("func", c.name), zap.String("call", c.id),
		zap.Int("batch", te.Batch), zap.Int64("offset", te.Rows.Offset), zap.Int64("rows", te.Rows.Len),
		zap.Int("attempts", te.Attempts), zap.Error(te.Err))
	return te
}
