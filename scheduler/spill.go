// Placing a call's tasks: here in the task's lane, or on a peer through
// Config.Remote, and taking a task back here when its peer fails it.
package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/zap"
)

// taskPlan is what admit knows of a batch for placing its tasks.
type taskPlan struct {
	bt      *batch
	seq     int
	bytes   int64   // the batch's buffers, in bytes
	perRow  float64 // the function's cost per row at the batch's size, ns; 0 unknown
	spilled bool    // the call came from a peer
}

// heldTask is a task the call holds until a result comes back: placement
// put it on a peer that already runs all the tasks it may for this node,
// or here while no slot is free here and the node has peers.
type heldTask struct {
	p   *taskPlan
	idx int
}

// place sends task idx of the batch where placement says, after the tasks
// the call holds, in order.
func (c *call) place(p *taskPlan, idx int) error {
	if len(c.held) > 0 {
		c.hold(p, idx)
		return nil
	}
	held, err := c.tryPlace(p, idx)
	if held {
		c.hold(p, idx)
	}
	return err
}

func (c *call) hold(p *taskPlan, idx int) {
	c.held = append(c.held, heldTask{p, idx})
	c.s.stats.held.Add(1)
}

// placeHeld places the tasks the call holds, in order, until one is held
// again; collect calls it as results come back.
func (c *call) placeHeld() error {
	for len(c.held) > 0 {
		h := c.held[0]
		held, err := c.tryPlace(h.p, h.idx)
		if err != nil || held {
			return err
		}
		c.held[0] = heldTask{}
		c.held = c.held[1:]
		c.s.stats.held.Add(-1)
	}
	return nil
}

// tryPlace asks placement where task idx of the batch runs and sends it
// there. A peer that already runs PeerLimit tasks per slot for this node
// takes no more: the task is held (held is true) while the call has tasks
// out whose results will say when to try again, else it runs here. The
// call's goroutine never blocks on a peer.
func (c *call) tryPlace(p *taskPlan, idx int) (held bool, err error) {
	r := p.bt.ranges[idx]
	snap := c.s.pool.snapshot(c.lane)
	snap.Rand = rand.Uint64()
	remote := c.s.cfg.Remote
	if remote != nil && !p.spilled {
		snap.Peers = remote.Peers(c.lane)
		c.s.peers.fill(snap.Peers)
		snap.Busy = busyNodes(snap)
	}
	info := TaskInfo{Func: c.name, Rows: r.Len, Spilled: p.spilled,
		CostNs: int64(p.perRow * float64(r.Len))}
	if rows := p.bt.rec.NumRows(); rows > 0 {
		info.Bytes = p.bytes * r.Len / rows
	}
	d := c.s.cfg.Placement.Place(snap, info)
	if !d.Local() && remote == nil {
		return false, fmt.Errorf("%w: %s", ErrNoPeers, d.Peer)
	}
	if !d.Local() && !p.spilled {
		for _, v := range snap.Peers {
			if v.Name != d.Peer {
				continue
			}
			if !c.s.peers.take(d.Peer, PeerLimit*max(v.Slots, 1)) {
				if c.outstanding > 0 {
					return true, nil
				}
				break
			}
			c.dispatched()
			c.s.stats.spilledOut.Add(1)
			go c.runOnPeer(p.bt, p.seq, idx, d.Peer)
			return false, nil
		}
	}
	// Here, but every slot here is taken and has a task waiting, and the
	// node has peers, or may have some soon (it is in a cluster: a node
	// joining mid-call gets work): the task waits in the call, not in the
	// lane's queue, so that the next result (a slot freed here or on a
	// peer) places it again. One waiting task per slot keeps the workers
	// fed meanwhile. Native tasks (of unknown cost, which never move) go
	// to their queue.
	if d.Local() && remote != nil && !p.spilled && c.lane == LaneWorkers &&
		snap.Running+snap.Queued >= snap.Slots*(1+PeerQueue) && c.outstanding > 0 {
		return true, nil
	}
	select {
	case c.s.pool.lanes[c.lane].jobs <- c.localJob(p.bt, p.seq, idx, 0):
		c.dispatched()
		return false, nil
	case <-c.ctx.Done():
		return false, c.ctx.Err()
	}
}

// dispatched counts a task sent to run, here or on a peer.
func (c *call) dispatched() {
	c.outstanding++
	c.s.stats.tasksActive.Add(1)
	c.s.stats.tasks.Add(1)
}

// localJob runs task idx here, after prior evaluations elsewhere.
func (c *call) localJob(bt *batch, seq, idx, prior int) job {
	return func() { c.inbox.put(c.runTask(bt.rec, seq, idx, bt.ranges[idx], prior)) }
}

// runOnPeer runs task idx on peer and delivers its result, or, when the
// peer failed it, queues it here: one result per task either way.
func (c *call) runOnPeer(bt *batch, seq, idx int, peer string) {
	r := bt.ranges[idx]
	rec := bt.rec.NewSlice(r.Offset, r.Offset+r.Len)
	out, err := c.s.cfg.Remote.Run(c.ctx, peer, RemoteTask{Func: c.b.Func, Rec: rec,
		OnError: c.b.Opts.OnError, TaskContext: c.b.Opts.TaskContext, Table: c.b.Table})
	rec.Release()
	c.s.peers.done(peer)
	res := taskResult{seq: seq, idx: idx, col: out.Col, rows: out.Rows, errs: out.Errs, work: out.Work}
	var pf *PeerFuncError
	switch {
	case err == nil:
		if err := c.checkRemote(out, r); err != nil {
			res.release()
			res.err = c.taskFailed(&TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: 1, Err: err})
		}
	case c.ctx.Err() != nil:
		res.err = c.ctx.Err()
	case errors.As(err, &pf):
		res.err = c.taskFailed(&TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: max(pf.Attempts, 1), Err: pf})
	case errors.Is(err, ErrPeerRefused):
		c.s.stats.peerRefusals.Add(1)
		c.requeue(bt, seq, idx, 0)
		return
	default:
		c.s.stats.peerFailures.Add(1)
		if c.b.Opts.Retries < 1 {
			res.err = c.taskFailed(&TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: 1, Err: fmt.Errorf("%w %s: %v", ErrPeerLost, peer, err)})
			break
		}
		c.s.stats.retries.Add(1)
		c.s.log.Warn("running here a task whose peer failed", zap.String("func", c.name), zap.String("call", c.id), zap.String("peer", peer),
			zap.Int64("offset", r.Offset), zap.Int64("rows", r.Len), zap.Error(err))
		c.requeue(bt, seq, idx, 1)
		return
	}
	c.inbox.put(res)
}

// requeue queues task idx in its lane here, or ends it if the call ended.
func (c *call) requeue(bt *batch, seq, idx, prior int) {
	select {
	case c.s.pool.lanes[c.lane].jobs <- c.localJob(bt, seq, idx, prior):
	case <-c.ctx.Done():
		c.inbox.put(taskResult{seq: seq, idx: idx, err: c.ctx.Err()})
	}
}

// checkRemote checks a peer's result for rows r as eval checks a local one.
func (c *call) checkRemote(out RemoteResult, r Range) error {
	col := out.Col
	switch {
	case col == nil:
		return fmt.Errorf("%w: %s: the peer returned no column", ErrBadResult, c.name)
	case !arrow.TypeEqual(col.DataType(), c.b.OutType):
		return fmt.Errorf("%w: %s returned %s on a peer, want %s", ErrBadResult, c.name, col.DataType(), c.b.OutType)
	case out.Errs != nil && len(out.Errs) != col.Len():
		return fmt.Errorf("%w: %s: the peer returned %d error messages for %d rows", ErrBadResult, c.name, len(out.Errs), col.Len())
	case c.b.Table:
		if len(out.Rows) != col.Len() {
			return fmt.Errorf("%w: %s: the peer returned %d row indices for %d values", ErrBadResult, c.name, len(out.Rows), col.Len())
		}
		return CheckTableRows(out.Rows, r.Len)
	case int64(col.Len()) != r.Len:
		return fmt.Errorf("%w: %s returned %d rows on a peer, want %d", ErrBadResult, c.name, col.Len(), r.Len)
	}
	return nil
}

// busyNodes counts the nodes with tasks waiting: this one and its peers.
func busyNodes(s Snapshot) int {
	n := 0
	if s.Queued > 0 {
		n++
	}
	for _, p := range s.Peers {
		if p.Queued > 0 {
			n++
		}
	}
	return n
}
