// When a node ends by itself: its owner process is gone, or it has had no
// client for a while.
package node

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// lifetimeTick is how often the node looks at its owner and its clients.
const lifetimeTick = 250 * time.Millisecond

// clients counts the connections open on the node's listeners and when the
// count last fell to zero. A client that keeps its connection between calls
// (a Spark Python worker caches one) counts as a client while it lives.
type clients struct {
	open  atomic.Int64
	since atomic.Int64 // unix ns: when open last became 0 (or the count began)
}

func newClients() *clients {
	c := &clients{}
	c.since.Store(time.Now().UnixNano())
	return c
}

// wrap counts the connections l accepts.
func (c *clients) wrap(l net.Listener) net.Listener { return &countedListener{Listener: l, c: c} }

// idleFor is how long the node has had no connection at now; zero while
// one is open.
func (c *clients) idleFor(now time.Time) time.Duration {
	if c.open.Load() > 0 {
		return 0
	}
	return now.Sub(time.Unix(0, c.since.Load()))
}

type countedListener struct {
	net.Listener
	c *clients
}

func (l *countedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.open.Add(1)
	return &countedConn{Conn: conn, c: l.c}, nil
}

type countedConn struct {
	net.Conn
	c    *clients
	once sync.Once
}

// Unwrap is the connection counted (the lane needs the unix socket's own).
func (c *countedConn) Unwrap() net.Conn { return c.Conn }

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.c.open.Add(-1) == 0 {
			c.c.since.Store(time.Now().UnixNano())
		}
	})
	return err
}

// alive reports whether process pid exists. A process this one may not
// signal exists too.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || !errors.Is(err, syscall.ESRCH)
}

// watchLifetime sends on the returned channel, once, why the node should end
// by itself: cfg.WatchPID has exited, or no client has been connected for
// cfg.IdleExit. It sends nothing when neither is set, and stops when ctx
// ends; wait waits for it to stop.
func watchLifetime(ctx context.Context, cfg Config, cl *clients) (ended <-chan string, wait func()) {
	out := make(chan string, 1)
	if cfg.WatchPID == 0 && cfg.IdleExit == 0 {
		return out, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(lifetimeTick)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				switch {
				case cfg.WatchPID != 0 && !alive(cfg.WatchPID):
					out <- "the process it serves exited"
					return
				case cfg.IdleExit > 0 && cl.idleFor(now) >= cfg.IdleExit:
					out <- "no client for " + cfg.IdleExit.String()
					return
				}
			}
		}
	}()
	return out, func() { <-done }
}
