// Core: the deterministic state of one call (admission window, task
// completion, in-order emission). No clocks, goroutines or I/O.
package scheduler

import "fmt"

// Core tracks the batches of one call from admission to emission. Batches
// are numbered from 0 in arrival order; tasks within a batch from 0.
type Core struct {
	window  int
	base    int          // sequence number of pending[0]
	pending []batchState // admitted, not yet emitted, in sequence order
}

type batchState struct {
	tasks int // how many tasks the batch was cut into
	done  int // how many have completed
	seen  []bool
}

// NewCore returns a core that admits at most window batches at once.
func NewCore(window int) *Core {
	if window < 1 {
		window = 1
	}
	return &Core{window: window}
}

// CanAdmit reports whether another batch fits in the window.
func (c *Core) CanAdmit() bool { return len(c.pending) < c.window }

// InFlight is the number of admitted batches not yet emitted.
func (c *Core) InFlight() int { return len(c.pending) }

// Admit records a new batch cut into tasks tasks and returns its sequence
// number. The caller must have checked CanAdmit.
func (c *Core) Admit(tasks int) int {
	if !c.CanAdmit() {
		panic("scheduler: Admit past the window")
	}
	c.pending = append(c.pending, batchState{tasks: tasks, seen: make([]bool, tasks)})
	return c.base + len(c.pending) - 1
}

// Complete records that task task of batch seq finished. It returns an
// error for a task that is unknown or completed twice, which would lose or
// duplicate rows.
func (c *Core) Complete(seq, task int) error {
	i := seq - c.base
	if i < 0 || i >= len(c.pending) {
		return fmt.Errorf("scheduler: completion for batch %d outside [%d, %d)", seq, c.base, c.base+len(c.pending))
	}
	b := &c.pending[i]
	if task < 0 || task >= b.tasks {
		return fmt.Errorf("scheduler: batch %d has no task %d", seq, task)
	}
	if b.seen[task] {
		return fmt.Errorf("scheduler: task %d of batch %d completed twice", task, seq)
	}
	b.seen[task] = true
	b.done++
	return nil
}

// Ready pops and returns the sequence numbers of the batches that are
// complete and have every earlier batch emitted, in order. The caller emits
// them in that order.
func (c *Core) Ready() []int {
	var out []int
	for len(c.pending) > 0 && c.pending[0].done == c.pending[0].tasks {
		out = append(out, c.base)
		c.pending = c.pending[1:]
		c.base++
	}
	return out
}
