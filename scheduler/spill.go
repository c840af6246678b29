// Placing a call's tasks: here in the task's lane, or on a peer through
// Config.Remote, and taking a task back here when its peer fails it.
package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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

// place asks placement where task idx of the batch runs and sends it
// there. A task for a peer that already runs PeerLimit tasks per slot for
// this node runs here instead: back-pressure without blocking the call.
func (c *call) place(p *taskPlan, idx int) error {
	r := p.bt.ranges[idx]
	snap := c.s.pool.snapshot(c.lane)
	snap.Rand = rand.Uint64()
	remote := c.s.cfg.Remote
	if remote != nil && !p.spilled {
		snap.Peers = remote.Peers(c.lane)
		c.s.peers.fill(snap.Peers)
	}
	info := TaskInfo{Func: c.name, Rows: r.Len, Spilled: p.spilled,
		CostNs: int64(p.perRow * float64(r.Len))}
	if rows := p.bt.rec.NumRows(); rows > 0 {
		info.Bytes = p.bytes * r.Len / rows
	}
	d := c.s.cfg.Placement.Place(snap, info)
	if !d.Local() && remote == nil {
		return fmt.Errorf("%w: %s", ErrNoPeers, d.Peer)
	}
	c.outstanding++
	c.s.stats.tasksActive.Add(1)
	c.s.stats.tasks.Add(1)
	if !d.Local() && !p.spilled {
		for _, v := range snap.Peers {
			if v.Name == d.Peer && c.s.peers.take(d.Peer, PeerLimit*max(v.Slots, 1)) {
				c.s.stats.spilledOut.Add(1)
				go c.runOnPeer(p.bt, p.seq, idx, d.Peer)
				return nil
			}
		}
	}
	select {
	case c.s.pool.lanes[c.lane].jobs <- c.localJob(p.bt, p.seq, idx, 0):
		return nil
	case <-c.ctx.Done():
		c.outstanding--
		c.s.stats.tasksActive.Add(-1)
		return c.ctx.Err()
	}
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
			res.err = &TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: 1, Err: err}
		}
	case c.ctx.Err() != nil:
		res.err = c.ctx.Err()
	case errors.As(err, &pf):
		res.err = &TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: max(pf.Attempts, 1), Err: pf}
	case errors.Is(err, ErrPeerRefused):
		c.s.stats.peerRefusals.Add(1)
		c.requeue(bt, seq, idx, 0)
		return
	default:
		c.s.stats.peerFailures.Add(1)
		if c.b.Opts.Retries < 1 {
			res.err = &TaskError{Func: c.name, Batch: seq, Rows: r, Attempts: 1, Err: fmt.Errorf("%w %s: %v", ErrPeerLost, peer, err)}
			break
		}
		c.s.stats.retries.Add(1)
		c.s.log.Warn("running here a task whose peer failed", zap.String("func", c.name), zap.String("peer", peer),
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

// recordBytes is the size of rec's buffers, children and dictionaries
// included: what sending it costs, roughly.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, col := range rec.Columns() {
		n += dataBytes(col.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, ch := range d.Children() {
		n += dataBytes(ch)
	}
	if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
		n += dataBytes(dict)
	}
	return n
}
