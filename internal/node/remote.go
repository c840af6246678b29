// The node's scheduler.Remote: peers' views from a PeerSource, tasks run
// through the flight peer client, in-flight tasks cut off when their peer
// is declared dead.
package node

import (
	"context"
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

	mu    sync.Mutex
	lives map[string]*peerLife // per live peer: cancelled when it dies
}

// peerLife is a peer's life as the node sees it: its context ends when the
// source stops reporting it alive.
type peerLife struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// deathCheck is how often remote looks for peers that died.
const deathCheck = 100 * time.Millisecond

func newRemote(src PeerSource, client *flight.PeerClient) *remote {
	return &remote{src: src, client: client, lives: map[string]*peerLife{}}
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
			alive[v.Name] = v.Alive
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

// Peers returns the live peers' views for lane l, in name order.
func (r *remote) Peers(l scheduler.Lane) []scheduler.PeerView {
	var out []scheduler.PeerView
	for _, v := range r.src.Views() {
		if !v.Alive || int(l) >= len(v.Lanes) || v.Lanes[l].Slots == 0 {
			continue
		}
		ll := v.Lanes[l]
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
	return res, err
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
