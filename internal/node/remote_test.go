package node

import (
	"testing"
	"time"

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
