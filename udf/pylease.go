// Leases: an idle worker handed to a client on the node's host for a
// while, so that the client's synchronous tasks go straight to the worker
// (docs/worker-protocol.md, "Leases").
package udf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ErrNoIdleWorker: Lease found no idle worker that takes leases. The
// client sends its task through the node instead.
var ErrNoIdleWorker = errors.New("udf: no idle python worker to lease")

// leaseHeader is a LEASE frame's header.
type leaseHeader struct {
	Lease  uint64 `json:"lease"`
	Fn     string `json:"fn"`
	IdleMs int64  `json:"idle_ms"`
	MaxMs  int64  `json:"max_ms"`
}

// leaseChannel is the node's and the worker's end of a worker's lease
// channel (the worker's fd 5), or nils when it cannot be made: the worker
// then takes no leases.
func leaseChannel() (*net.UnixConn, *os.File) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil
	}
	parent := os.NewFile(uintptr(fds[0]), "quiver-lease-parent")
	defer parent.Close()
	c, err := net.FileConn(parent)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil
	}
	return c.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "quiver-lease-child")
}

// Lease takes an idle worker (one with the function loaded when there is
// one), and hands it the worker's end of a fresh socket pair: until the
// client closes its end, sends nothing for idle, or max has passed, the
// worker serves the client's requests for the function on it. The worker
// is busy meanwhile (the caller keeps the scheduler from counting on it);
// ended is called once the lease has ended and the worker is back. Lease
// returns the client's end. It never waits for a worker: with none idle it
// fails with ErrNoIdleWorker, and ended is not called.
func (p *WorkerPool) Lease(fnID, name string, blob []byte, idle, max time.Duration, ended func()) (*os.File, error) {
	p.mu.Lock()
	i := PickWorker(p.idle, fnID)
	if i >= 0 && p.idleW[i].leases == nil {
		i = -1
		for j, w := range p.idleW {
			if w.leases != nil {
				i = j
				break
			}
		}
	}
	if i < 0 || p.ctx.Err() != nil {
		p.mu.Unlock()
		return nil, ErrNoIdleWorker
	}
	w := p.idleW[i]
	p.removeIdle(i)
	p.wg.Add(1) // under mu, the pool open: Close's Wait comes after (it cancels under mu)
	p.mu.Unlock()
	if !w.alive() {
		p.wg.Done()
		p.replace(w)
		return nil, ErrNoIdleWorker
	}
	client, err := w.lease(fnID, name, blob, p.leaseSeq.Add(1), idle, max)
	if err != nil {
		p.wg.Done()
		p.release(w)
		return nil, err
	}
	p.leases.Add(1)
	go func() {
		defer p.wg.Done()
		stop := context.AfterFunc(p.ctx, w.kill) // a closing pool does not wait for the lease
		n, err := w.awaitLeaseEnd()
		stop()
		p.tasks.Add(n)
		if err != nil {
			p.log.Debug("a leased worker ended", zap.Error(err))
		}
		p.release(w)
		ended()
	}()
	return client, nil
}

// lease sends LOAD if needed, then LEASE and the worker's end of a new
// socket pair over the lease channel; it returns the client's end.
func (w *pyWorker) lease(fnID, name string, blob []byte, n uint64, idle, max time.Duration) (*os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("udf: lease socketpair: %w", err)
	}
	client := os.NewFile(uintptr(fds[0]), "quiver-lease-client")
	defer syscall.Close(fds[1]) // the worker has its own copy once sent
	if !w.loaded[fnID] {
		if err := writeFrame(w.conn, frameLoad, loadHeader{Fn: fnID, Name: name}, blob); err != nil {
			client.Close()
			return nil, w.died(err)
		}
		w.loaded[fnID] = true
	}
	hdr := leaseHeader{Lease: n, Fn: fnID, IdleMs: idle.Milliseconds(), MaxMs: max.Milliseconds()}
	if err := writeFrame(w.conn, frameLease, hdr, nil); err != nil {
		client.Close()
		return nil, w.died(err)
	}
	if _, _, err := w.leases.WriteMsgUnix([]byte{1}, syscall.UnixRights(fds[1]), nil); err != nil {
		client.Close()
		return nil, w.died(err)
	}
	return client, nil
}

// awaitLeaseEnd reads the worker's LEASE_END and returns the tasks it ran
// during the lease; an error means the worker died or broke the protocol.
func (w *pyWorker) awaitLeaseEnd() (int64, error) {
	f, err := readFrame(w.r)
	if err == nil && f.kind != frameLeaseEnd {
		err = fmt.Errorf("%w: frame of kind %d during a lease, want LEASE_END", ErrProtocol, f.kind)
	}
	var end struct {
		Tasks int64 `json:"tasks"`
	}
	if err == nil {
		err = f.decodeHeader(&end)
	}
	if err != nil {
		return 0, w.died(err)
	}
	return end.Tasks, nil
}

// Lease leases a worker for this function (WorkerPool.Lease). A function
// whose rows run concurrently is not leased.
func (f *PyFunc) Lease(idle, max time.Duration, ended func()) (*os.File, error) {
	if f.table || f.conc > 1 || f.pool == nil {
		return nil, ErrNoIdleWorker
	}
	return f.pool.Lease(f.id, f.name, f.blob, idle, max, ended)
}
