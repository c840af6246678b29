// Room reports: this node tells busy peers when a slot frees with nothing
// queued (the sender), and takes their reports as their newest load (the
// receiving half, in remote's views), waking the calls that hold tasks.
package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/scheduler"
)

const (
	// roomEvery is the least time between two rounds of room reports: a
	// node whose tasks end quickly sends at most 200 rounds a second.
	roomEvery = 5 * time.Millisecond
	// roomTimeout bounds one report's send; a report late is worthless.
	roomTimeout = time.Second
)

// roomSender sends room reports, one round at a time, as the scheduler's
// OnRoom asks for them.
type roomSender struct {
	src    PeerSource
	name   func() string // this node's name; "" before it joins
	client *flight.PeerClient
	log    *zap.Logger
	kicks  chan struct{}
}

func newRoomSender(src PeerSource, name func() string, client *flight.PeerClient, log *zap.Logger) *roomSender {
	return &roomSender{src: src, name: name, client: client, log: log, kicks: make(chan struct{}, 1)}
}

// kick is the scheduler's OnRoom: it asks for a round without blocking;
// kicks while a round is due make one round.
func (rs *roomSender) kick(scheduler.Lane) {
	select {
	case rs.kicks <- struct{}{}:
	default:
	}
}

// run sends a round per kick, roomEvery apart at most, until ctx ends.
func (rs *roomSender) run(ctx context.Context, load func() []scheduler.LaneStats) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rs.kicks:
		}
		rs.send(ctx, load())
		select {
		case <-ctx.Done():
			return
		case <-time.After(roomEvery):
		}
	}
}

// send tells scheduler.RoomFan live peers, picked at random among those
// whose calls hold tasks (PeerInfo.Held), this node's load (lanes, in
// Lane order) when it has room in a lane.
func (rs *roomSender) send(ctx context.Context, lanes []scheduler.LaneStats) {
	name := rs.name()
	if name == "" || len(lanes) < 2 {
		return
	}
	room := false
	for _, l := range lanes {
		room = room || l.Running < l.Slots && l.Queued == 0
	}
	var busy []PeerInfo
	for _, v := range rs.src.Views() {
		if v.Alive && v.Held > 0 {
			busy = append(busy, v)
		}
	}
	if !room || len(busy) == 0 {
		return
	}
	rand.Shuffle(len(busy), func(i, j int) { busy[i], busy[j] = busy[j], busy[i] })
	busy = busy[:min(len(busy), scheduler.RoomFan)]
	w, e := lanes[scheduler.LaneWorkers], lanes[scheduler.LaneNative]
	report := flight.Room{Name: name,
		Workers:   flight.RoomLane{Slots: w.Slots, Running: w.Running, Queued: w.Queued},
		Executors: flight.RoomLane{Slots: e.Slots, Running: e.Running, Queued: e.Queued}}
	var wg sync.WaitGroup
	for _, v := range busy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, roomTimeout)
			defer cancel()
			if err := rs.client.Room(sctx, v.FlightAddr, report); err != nil {
				rs.log.Debug("room report", zap.String("peer", v.Name), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// roomReport is a peer's room report, taken as its load until membership
// brings a load record newer than gossip.
type roomReport struct {
	gossip uint64 // the peer's load record (PeerInfo.Report) when it came
	seq    uint64 // its number among the reports this node took
	lanes  [2]LaneLoad
}

// observeRoom takes a live peer's room report as its newest load; false
// when no live peer has that name.
func (r *remote) observeRoom(rm flight.Room) bool {
	for _, v := range r.src.Views() {
		if v.Name != rm.Name || !v.Alive {
			continue
		}
		var lanes [2]LaneLoad
		lanes[scheduler.LaneWorkers] = LaneLoad{Slots: rm.Workers.Slots, Running: rm.Workers.Running, Queued: rm.Workers.Queued}
		lanes[scheduler.LaneNative] = LaneLoad{Slots: rm.Executors.Slots, Running: rm.Executors.Running, Queued: rm.Executors.Queued}
		r.mu.Lock()
		r.roomSeq++
		r.rooms[rm.Name] = roomReport{gossip: v.Report, seq: r.roomSeq, lanes: lanes}
		r.mu.Unlock()
		return true
	}
	return false
}

// withRoom is v with its room report in place of its load, when it sent
// one since its load record of v.Report; the report gets a number of its
// own, so that placement counts this node's tasks in flight from it.
// r.mu is held.
func (r *remote) withRoom(v PeerInfo) PeerInfo {
	rr, ok := r.rooms[v.Name]
	if !ok {
		return v
	}
	if rr.gossip != v.Report {
		delete(r.rooms, v.Name) // membership brought a newer record
		return v
	}
	v.Lanes, v.Report = rr.lanes, v.Report|rr.seq<<32
	return v
}
