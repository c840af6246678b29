// A memory budget for the IPC reader of one stream.
package ipccheck

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrBudget: decoding a stream needed more memory at once than its budget.
var ErrBudget = errors.New("ipccheck: over the memory budget")

// budget bounds the bytes the IPC reader of one stream holds at once. The
// reader allocates only to inflate compressed buffers, at the size the
// body declares; Checker bounds the buffers a header lists, but arrow-go
// reads past the end of the list when a schema needs more, so an
// allocation past the budget panics here, inside the reader, which turns
// the panic into an error.
type budget struct {
	memory.Allocator
	left atomic.Int64
}

// NewBudget returns an allocator that allocates from mem and panics with
// an error wrapping ErrBudget rather than hold more than n bytes at once.
// Give it to an IPC reader (ipc.WithAllocator), which recovers the panic.
func NewBudget(mem memory.Allocator, n int64) memory.Allocator {
	a := &budget{Allocator: mem}
	a.left.Store(n)
	return a
}

func (a *budget) take(n int) {
	if a.left.Add(-int64(n)) < 0 {
		a.left.Add(int64(n))
		panic(fmt.Errorf("%w: the input inflates to more than the node holds for one call", ErrBudget))
	}
}

func (a *budget) Allocate(size int) []byte {
	a.take(size)
	return a.Allocator.Allocate(size)
}

func (a *budget) Reallocate(size int, b []byte) []byte {
	a.take(size - len(b))
	return a.Allocator.Reallocate(size, b)
}

func (a *budget) Free(b []byte) {
	a.left.Add(int64(len(b)))
	a.Allocator.Free(b)
}
