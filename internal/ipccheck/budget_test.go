// Tests of the memory budget of one stream's reader.
package ipccheck

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestBudgetAllocator: the reader's allocator refuses, by a panic the
// reader recovers, to hold more than its budget at once.
func TestBudgetAllocator(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	a := NewBudget(mem, 100)
	b1 := a.Allocate(60)
	b1 = a.Reallocate(80, b1)
	func() {
		defer func() {
			err, _ := recover().(error)
			if !errors.Is(err, ErrBudget) {
				t.Fatalf("allocating past the budget: recovered %v, want ErrBudget", err)
			}
		}()
		a.Allocate(30)
	}()
	a.Free(b1)
	a.Free(a.Allocate(100)) // the whole budget is back
}
