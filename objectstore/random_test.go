// Random walks over the core: any sequence of valid calls keeps its
// invariants, and releasing everything leaves nothing behind.
package objectstore

import (
	"fmt"
	"math/rand"
	"testing"
)

// walker drives a core as well-behaved callers and a spiller would, at
// random, tracking the references and pins it holds.
type walker struct {
	t       *testing.T
	rng     *rand.Rand
	c       *core
	refs    map[*meta]int
	pins    map[*meta]int
	order   []*meta    // every object seen, in order: the walk is reproducible by seed
	waiting []*request // puts and pins waiting, one entry per waiter
	ids     int
}

// hold counts a reference to m.
func (w *walker) hold(m *meta) {
	if _, ok := w.refs[m]; !ok {
		w.order = append(w.order, m)
	}
	w.refs[m]++
}

func (w *walker) events() {
	for _, e := range w.c.take() {
		switch e.kind {
		case evAdmit:
			w.hold(e.m)
			w.drop(e.r, 1)
		case evRefuse:
			w.drop(e.r, -1)
		case evRestore:
			w.pins[e.m] += w.drop(e.r, -1)
		}
	}
}

// drop forgets up to max waiters of r (all if negative) and returns how many.
func (w *walker) drop(r *request, max int) int {
	n := 0
	keep := w.waiting[:0]
	for _, q := range w.waiting {
		if q == r && (max < 0 || n < max) {
			n++
			continue
		}
		keep = append(keep, q)
	}
	w.waiting = keep
	return n
}

// pick returns a random object the walker holds a reference to, or nil.
func (w *walker) pick() *meta {
	var ms []*meta
	for _, m := range w.order {
		if w.refs[m] > 0 {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	return ms[w.rng.Intn(len(ms))]
}

func (w *walker) step() {
	bound := w.c.bound
	switch op := w.rng.Intn(10); op {
	case 0, 1:
		w.ids++
		id := ID(fmt.Sprint(w.ids))
		if w.rng.Intn(8) == 0 && w.ids > 1 {
			id = ID(fmt.Sprint(w.rng.Intn(w.ids-1) + 1)) // content id that may exist
		}
		out, m, r, err := w.c.put(id, w.rng.Int63n(bound/2+1))
		switch {
		case err != nil:
		case out == outWait:
			w.waiting = append(w.waiting, r)
		default:
			w.hold(m)
		}
	case 2:
		if m := w.pick(); m != nil {
			out, r, err := w.c.pin(m)
			switch {
			case err != nil:
			case out == outWait:
				w.waiting = append(w.waiting, r)
			default:
				w.pins[m]++
			}
		}
	case 3:
		if m := w.pick(); m != nil && w.pins[m] > 0 {
			w.c.unpin(m)
			w.pins[m]--
		}
	case 4:
		if m := w.pick(); m != nil && (w.refs[m] > 1 || w.pins[m] == 0) && !w.waitsFor(m) {
			w.c.release(m)
			w.refs[m]--
		}
	case 5:
		if m := w.pick(); m != nil {
			w.c.retain(m)
			w.refs[m]++
		}
	case 6:
		if len(w.waiting) > 0 {
			r := w.waiting[w.rng.Intn(len(w.waiting))]
			w.c.cancel(r)
			w.drop(r, 1)
		}
	default:
		w.spill()
	}
	w.events()
	if err := w.c.check(); err != nil {
		w.t.Fatal(err)
	}
}

// waitsFor reports whether a pin waits for m: its waiter holds a reference.
func (w *walker) waitsFor(m *meta) bool {
	for _, r := range w.waiting {
		if r.m == m && !r.put {
			return true
		}
	}
	return false
}

// spill does the spiller's next step: a job, or completing the one in flight.
func (w *walker) spill() {
	if w.c.busy == nil {
		w.c.next()
		return
	}
	fail := w.rng.Intn(10) == 0
	switch w.c.busy.kind {
	case jobWrite:
		if fail {
			w.c.writeFailed()
		} else {
			w.c.written(w.c.busy.m.size/2 + 1)
		}
	case jobRead:
		if fail {
			w.c.readFailed(fmt.Errorf("read failed"))
		} else {
			w.c.readDone()
		}
	}
}

func TestCoreRandomWalks(t *testing.T) {
	for seed := int64(0); seed < 300; seed++ {
		w := &walker{t: t, rng: rand.New(rand.NewSource(seed)), refs: map[*meta]int{}, pins: map[*meta]int{}}
		bound := int64(50 + w.rng.Intn(200))
		w.c = newCore(bound, bound*int64(1+w.rng.Intn(10))/10, int64(1+w.rng.Intn(300)))
		for i := 0; i < 400; i++ {
			w.step()
		}
		if w.c.used > w.c.bound || w.c.peak > w.c.bound {
			t.Fatalf("seed %d: used %d peak %d past the bound %d", seed, w.c.used, w.c.peak, w.c.bound)
		}
		// Wind down: every waiter gives up, every pin and reference goes.
		for len(w.waiting) > 0 {
			r := w.waiting[0]
			w.c.cancel(r)
			w.drop(r, 1)
			w.events()
		}
		for _, m := range w.order {
			for ; w.pins[m] > 0; w.pins[m]-- {
				w.c.unpin(m)
			}
		}
		for _, m := range w.order {
			for ; w.refs[m] > 0; w.refs[m]-- {
				w.c.release(m)
			}
			w.events()
		}
		for w.c.busy != nil || w.c.wantsWork() {
			w.spill()
			w.events()
		}
		if err := w.c.check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(w.c.objs) != 0 || w.c.used != 0 || len(w.c.files) != 0 || len(w.c.queue) != 0 {
			t.Fatalf("seed %d: left after releasing everything: %d objects, %d bytes, %d files, %d waiting",
				seed, len(w.c.objs), w.c.used, len(w.c.files), len(w.c.queue))
		}
	}
}
