// Tests of borrowing a slot: only a free one, counted as running until
// released, and never after Close.
package scheduler

import (
	"testing"
	"time"
)

func TestBorrowTakesOnlyAFreeSlot(t *testing.T) {
	s, err := New(Config{Executors: 1, Workers: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	workers := func() LaneStats { return s.Stats().Lanes[LaneWorkers] }
	rel1, ok := s.Borrow(LaneWorkers, time.Second)
	if !ok {
		t.Fatal("a free slot was not lent")
	}
	rel2, ok := s.Borrow(LaneWorkers, time.Second)
	if !ok {
		t.Fatal("the second free slot was not lent")
	}
	if w := workers(); w.Running != 2 {
		t.Fatalf("two slots lent, the lane says %+v", w)
	}
	if _, ok := s.Borrow(LaneWorkers, 10*time.Millisecond); ok {
		t.Fatal("a slot was lent from a full lane")
	}
	rel1()
	rel1() // twice does nothing
	deadline := time.Now().Add(10 * time.Second)
	for workers().Running != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a released slot still runs: %+v", workers())
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok := s.Borrow(Lane(7), time.Second); ok {
		t.Fatal("a slot of a lane that does not exist")
	}
	rel2()
	s.Close()
	if _, ok := s.Borrow(LaneWorkers, time.Second); ok {
		t.Fatal("a slot lent after Close")
	}
}
