// Membership events: memberlist's callbacks, recorded and handed to
// Config.OnEvent in order from one goroutine.
package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// EventKind is what happened to a member.
type EventKind string

const (
	// Joined: a member appeared (this node included, first of all).
	Joined EventKind = "joined"
	// Updated: a member's Load changed.
	Updated EventKind = "updated"
	// Left: a member left on purpose (Leave).
	Left EventKind = "left"
	// Dead: a member stopped answering and was declared dead: its tasks
	// in flight will not complete.
	Dead EventKind = "dead"
)

// Event is a change of one member, with the member as it is after it.
type Event struct {
	Kind   EventKind
	Member Member
}

// delegate is memberlist's Delegate (this node's metadata),
// EventDelegate (changes of members) and PingDelegate (round trips).
// memberlist calls it with its own locks held: it never blocks and never
// calls back into memberlist. The members it records are copies:
// memberlist's own Node values change under its lock and cannot be read
// outside its callbacks.
type delegate struct {
	log *zap.Logger
	// closed: the Cluster closed; memberlist's goroutines, which outlive
	// its Shutdown, may still call in, and nothing is logged any more.
	closed atomic.Bool

	mu      sync.Mutex
	meta    []byte             // this node's encoded Load
	members map[string]*record // every member heard of, by name
	// queue holds events not yet handed to OnEvent; wake has room for one
	// signal that it is not empty. Both are nil without OnEvent.
	queue []Event
	wake  chan struct{}
}

// record is a member, when it entered its state, and whether it
// announced it is leaving.
type record struct {
	m       Member
	since   time.Time
	leaving bool
}

func newDelegate(log *zap.Logger, meta []byte, events bool) *delegate {
	d := &delegate{log: log, meta: meta, members: map[string]*record{}}
	if events {
		d.wake = make(chan struct{}, 1)
	}
	return d
}

// setMeta replaces this node's metadata; it reports whether it changed.
func (d *delegate) setMeta(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if string(b) == string(d.meta) {
		return false
	}
	d.meta = b
	return true
}

// NodeMeta is this node's encoded Load; encodeLoad keeps it within limit.
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}
func (d *delegate) AckPayload() []byte                         { return nil }

func (d *delegate) NotifyJoin(n *memberlist.Node) {
	m, leaving := memberOf(n)
	d.info("member joined", zap.String("name", m.Name), zap.String("gossip", m.GossipAddr), zap.String("flight", m.Load.Flight))
	d.set(Joined, m, leaving)
}

func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	m, leaving := memberOf(n)
	d.mu.Lock()
	if r := d.members[m.Name]; r != nil {
		m.State, m.RTT = r.m.State, r.m.RTT
	}
	d.mu.Unlock()
	d.set(Updated, m, leaving)
}

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	m, leaving := memberOf(n)
	d.mu.Lock()
	if r := d.members[m.Name]; r != nil {
		leaving = leaving || r.leaving
		m.RTT = r.m.RTT
	}
	d.mu.Unlock()
	kind := Dead
	m.State = StateDead
	if leaving {
		kind, m.State = Left, StateLeft
	}
	d.info("member "+string(kind), zap.String("name", m.Name), zap.String("gossip", m.GossipAddr))
	d.set(kind, m, leaving)
}

// NotifyPingComplete: a member answered a probe; it is no longer suspect.
func (d *delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.members[n.Name]; r != nil {
		r.m.RTT = rtt
		if r.m.State == StateSuspect {
			r.m.State, r.since = StateAlive, time.Now()
		}
	}
}

// suspect marks an alive member suspect: it missed this node's probe.
func (d *delegate) suspect(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.members[name]; r != nil && r.m.State == StateAlive {
		r.m.State, r.since = StateSuspect, time.Now()
	}
}

// info logs unless the Cluster closed.
func (d *delegate) info(msg string, fields ...zap.Field) {
	if !d.closed.Load() {
		d.log.Info(msg, fields...)
	}
}

// set records m and queues the event.
func (d *delegate) set(kind EventKind, m Member, leaving bool) {
	d.mu.Lock()
	since := time.Now()
	r := d.members[m.Name]
	if r != nil && r.m.State == m.State {
		since = r.since
	}
	if r != nil {
		m.Reports = r.m.Reports
	}
	m.Reports++
	m.Leaving = leaving
	d.members[m.Name] = &record{m: m, since: since, leaving: leaving}
	if d.wake != nil {
		d.queue = append(d.queue, Event{Kind: kind, Member: m})
	}
	d.mu.Unlock()
	if d.wake != nil {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// dispatch hands queued events to fn, in order, until stop is closed.
func (d *delegate) dispatch(fn func(Event), stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		q := d.queue
		d.queue = nil
		d.mu.Unlock()
		for _, e := range q {
			fn(e)
		}
	}
}

// list is every member recorded; those dead or left for longer than
// forget are forgotten.
func (d *delegate) list(now time.Time, forget time.Duration) []Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Member, 0, len(d.members))
	for name, r := range d.members {
		if (r.m.State == StateDead || r.m.State == StateLeft) && now.Sub(r.since) > forget {
			delete(d.members, name)
			continue
		}
		out = append(out, r.m)
	}
	return out
}
