// The event queue of the simulation, in virtual time.
package placesim

type eventKind uint8

const (
	evArrive  eventKind = iota // a task arrives at its origin
	evRefresh                  // views refresh
	evReceive                  // a spilled task reaches its peer
	evRefused                  // the origin learns its peer refused a task
	evFinish                   // a task ends on a node
	evReturn                   // a spilled task's result reaches its origin
	evRoom                     // a node's room report reaches an origin (task: the origin)
)

type event struct {
	at   int64
	seq  uint64 // ties keep the order events were pushed in
	kind eventKind
	task int
	node int
	// evRoom: the sender's running tasks when it sent the report.
	running int
}

type eventHeap struct {
	ev  []event
	seq uint64
}

func (h *eventHeap) Len() int { return len(h.ev) }
func (h *eventHeap) Less(i, j int) bool {
	if h.ev[i].at != h.ev[j].at {
		return h.ev[i].at < h.ev[j].at
	}
	return h.ev[i].seq < h.ev[j].seq
}
func (h *eventHeap) Swap(i, j int) { h.ev[i], h.ev[j] = h.ev[j], h.ev[i] }
func (h *eventHeap) Push(x any) {
	e := x.(event)
	h.seq++
	e.seq = h.seq
	h.ev = append(h.ev, e)
}
func (h *eventHeap) Pop() any {
	e := h.ev[len(h.ev)-1]
	h.ev = h.ev[:len(h.ev)-1]
	return e
}
