package node

import (
	"testing"
	"time"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/scheduler"
)

// views is a PeerSource of fixed views.
type views []PeerInfo

func (v views) Views() []PeerInfo { return v }

func peerNames(ps []scheduler.PeerView) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestADownPeerIsLeftOutUntilItReportsOrTimePasses(t *testing.T) {
	lanes := [2]LaneLoad{}
	lanes[scheduler.LaneWorkers] = LaneLoad{Slots: 1}
	src := views{{Name: "a", Alive: true, Report: 7, Lanes: lanes}, {Name: "b", Alive: true, Report: 3, Lanes: lanes},
		{Name: "c", Leaving: true, Report: 1, Lanes: lanes}}
	r := newRemote(src, nil)
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }

	if got := peerNames(r.Peers(scheduler.LaneWorkers)); len(got) != 2 {
		t.Fatalf("peers %v, want a and b (c leaves)", got)
	}
	r.markDown("a")
	if got := peerNames(r.Peers(scheduler.LaneWorkers)); len(got) != 1 || got[0] != "b" {
		t.Fatalf("peers %v after a failed, want b", got)
	}
	now = now.Add(downFor)
	if got := peerNames(r.Peers(scheduler.LaneWorkers)); len(got) != 2 {
		t.Fatalf("peers %v once the mark lapsed, want a and b", got)
	}
	r.markDown("b")
	src[1].Report++
	if got := peerNames(r.Peers(scheduler.LaneWorkers)); len(got) != 2 {
		t.Fatalf("peers %v after b reported again, want a and b", got)
	}
}

func TestARoomReportStandsForALoadRecordUntilANewerOne(t *testing.T) {
	lanes := [2]LaneLoad{}
	lanes[scheduler.LaneWorkers] = LaneLoad{Slots: 4, Running: 4, Queued: 4}
	src := views{{Name: "a", Alive: true, Report: 7, Lanes: lanes}, {Name: "dead", Report: 2, Lanes: lanes}}
	r := newRemote(src, nil)
	if r.observeRoom(flight.Room{Name: "dead", Workers: flight.RoomLane{Slots: 4}}) ||
		r.observeRoom(flight.Room{Name: "stranger", Workers: flight.RoomLane{Slots: 4}}) {
		t.Fatal("took a room report of a peer that is not alive")
	}
	before := r.Peers(scheduler.LaneWorkers)[0]
	if !r.observeRoom(flight.Room{Name: "a", Workers: flight.RoomLane{Slots: 4, Running: 1}}) {
		t.Fatal("a live peer's room report was not taken")
	}
	got := r.Peers(scheduler.LaneWorkers)
	if len(got) != 1 || got[0].Running != 1 || got[0].Queued != 0 || got[0].Slots != 4 || got[0].Report == before.Report {
		t.Fatalf("after a's room report: %+v (before %+v)", got, before)
	}
	// A second report gets a number of its own: placement recounts from it.
	r.observeRoom(flight.Room{Name: "a", Workers: flight.RoomLane{Slots: 4, Running: 2}})
	if again := r.Peers(scheduler.LaneWorkers); again[0].Report == got[0].Report || again[0].Running != 2 {
		t.Fatalf("a second report: %+v, first %+v", again, got)
	}
	// A newer load record from membership replaces the report.
	src[0].Report = 8
	if got := r.Peers(scheduler.LaneWorkers); got[0].Running != 4 || got[0].Queued != 4 || got[0].Report != 8 {
		t.Fatalf("after a newer load record: %+v", got)
	}
}
