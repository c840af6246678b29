// Draining spilled calls: a stopping node refuses new tasks from peers,
// which place them elsewhere, and finishes those it runs.
package flight

import (
	"context"
	"errors"
	"sync"
)

// errSpillDraining: a spilled task came to a node that is stopping. It is
// ResourceExhausted, which origins take as a refusal: the task runs
// elsewhere, not counted as a retry.
var errSpillDraining = errors.New("node is draining: it takes no spilled task; run it elsewhere")

// spills counts the spilled calls a node runs and refuses new ones once
// it drains. The zero value takes calls.
type spills struct {
	mu      sync.Mutex
	refused bool
	active  int
	idle    chan struct{} // closed when refused and none is active
}

// admit counts a spilled call, or refuses it when the node drains; done
// ends the count.
func (sp *spills) admit() (done func(), err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.refused {
		return nil, errSpillDraining
	}
	sp.active++
	return func() {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if sp.active--; sp.active == 0 && sp.idle != nil {
			close(sp.idle)
			sp.idle = nil
		}
	}, nil
}

// refuse refuses spilled calls from now on, and returns a channel closed
// once none runs.
func (sp *spills) refuse() <-chan struct{} {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.refused = true
	idle := make(chan struct{})
	if sp.active == 0 {
		close(idle)
	} else if sp.idle == nil {
		sp.idle = idle
	} else {
		idle = sp.idle
	}
	return idle
}

// RefuseSpills makes the node refuse tasks that peers spill to it
// (ResourceExhausted: they run elsewhere) while it serves everything
// else: a node about to leave the cluster calls it first.
func (s *Server) RefuseSpills() { s.spills.refuse() }

// awaitSpills waits until no spilled call runs, or ctx ends.
func (s *Server) awaitSpills(ctx context.Context) {
	select {
	case <-s.spills.refuse():
	case <-ctx.Done():
	}
}
