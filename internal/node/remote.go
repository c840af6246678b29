// The node's scheduler.Remote: peers' views from a PeerSource, tasks run
// through the flight peer client, in-flight tasks cut off when their peer
// is declared dead, and a peer that could not be reached left out of
// placement for a while.
package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/scheduler"
)

// remote joins a PeerSource and the peer client into scheduler.Remote.
type remote struct {
	src    PeerSource
	client *flight.PeerClient

	mu      sync.Mutex
	lives   map[string]*peerLife  // per live peer: cancelled when it dies
	down    map[string]downMark   // peers that could not be reached lately
	rooms   map[string]roomReport // peers' room reports newer than their load records (room.go)
	roomSeq uint64
	now     func() time.Time // the clock of down marks
}

// downMark leaves a peer out of placement after a transport failure (the
// peer refused the connection or the stream broke) until membership
// reports a newer load record for it or downFor passes: a peer killed
// then costs one failed task per task in flight, not one per placement
// until membership declares it dead.
type downMark struct {
	report uint64    // its load record when it failed
	until  time.Time // when the mark lapses
}

// downFor is how long a down mark lasts without a newer load record: about
// as long as membership takes to declare a killed peer dead.
const downFor = time.Second

// peerLife is a peer's life as the node sees it: its context ends when the
// source stops reporting it alive.
type peerLife struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// deathCheck is how often remote looks for peers that died.
const deathCheck = 100 * time.Millisecond

func newRemote(src PeerSource, client *flight.PeerClient) *remote {
	return &remote{src: src, client: client, lives: map[string]*peerLife{}, down: map[string]downMark{},
		rooms: map[string]roomReport{}, now: time.Now}
}

// watch cancels the tasks in flight to peers the source no longer reports
// alive, until ctx ends.
func (r *remote) watch(ctx context.Context) {
	t := time.NewTicker(deathCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for name, l := range r.lives {
				l.cancel()
				delete(r.lives, name)
			}
			r.mu.Unlock()
			return
		case <-t.C:
		}
		alive := map[string]bool{}
		for _, v := range r.src.Views() {
			// A leaving peer finishes what it runs: not cut off.
			alive[v.Name] = v.Alive || v.Leaving
		}
		r.mu.Lock()
		for name, l := range r.lives {
			if !alive[name] {
				l.cancel()
				delete(r.lives, name)
			}
		}
		r.mu.Unlock()
	}
}

// Peers returns the live peers' views for lane l, in name order, less
// those marked down; a peer's room report stands for its load when newer.
func (r *remote) Peers(l scheduler.Lane) []scheduler.PeerView {
	var out []scheduler.PeerView
	views := r.src.Views()
	r.mu.Lock() // once per placement, not once per peer
	defer r.mu.Unlock()
	for _, v := range views {
		if !v.Alive || int(l) >= len(v.Lanes) || r.isDown(v.Name, v.Report) {
			continue
		}
		v = r.withRoom(v)
		ll := v.Lanes[l]
		if ll.Slots == 0 {
			continue
		}
		out = append(out, scheduler.PeerView{Name: v.Name, Slots: ll.Slots, Running: ll.Running, Queued: ll.Queued,
			Report: v.Report, RTTNs: v.RTT.Nanoseconds()})
	}
	return out
}

// Run runs t on peer; its context also ends when the peer is declared dead.
func (r *remote) Run(ctx context.Context, peer string, t scheduler.RemoteTask) (scheduler.RemoteResult, error) {
	addr, life := r.lookup(peer)
	if addr == "" {
		return scheduler.RemoteResult{}, fmt.Errorf("%w: %s is not a live peer", scheduler.ErrPeerRefused, peer)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(life.ctx, cancel)
	defer stop()
	res, err := r.client.Run(ctx, addr, t)
	if err != nil && life.ctx.Err() != nil {
		return res, fmt.Errorf("%w %s: declared dead", scheduler.ErrPeerLost, peer)
	}
	if errors.Is(err, flight.ErrPeerUnreachable) && ctx.Err() == nil {
		r.markDown(peer)
	}
	return res, err
}

// markDown leaves peer out of placement until its next load record or
// downFor passes.
func (r *remote) markDown(peer string) {
	var report uint64
	for _, v := range r.src.Views() {
		if v.Name == peer {
			report = v.Report
		}
	}
	r.mu.Lock()
	r.down[peer] = downMark{report: report, until: r.now().Add(downFor)}
	r.mu.Unlock()
}

// isDown reports whether peer, whose last load record is report, is
// marked down; a mark that lapsed is dropped. r.mu is held.
func (r *remote) isDown(peer string, report uint64) bool {
	m, ok := r.down[peer]
	if !ok {
		return false
	}
	if m.report != report || !r.now().Before(m.until) {
		delete(r.down, peer)
		return false
	}
	return true
}

// lookup returns peer's address and life, or "" when it is not alive.
func (r *remote) lookup(peer string) (string, *peerLife) {
	addr := ""
	for _, v := range r.src.Views() {
		if v.Name == peer && v.Alive {
			addr = v.FlightAddr
		}
	}
	if addr == "" {
		return "", nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.lives[peer]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		l = &peerLife{ctx: ctx, cancel: cancel}
		r.lives[peer] = l
	}
	return addr, l
}
