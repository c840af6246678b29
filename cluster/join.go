// Joining: retried with backoff in the background until it succeeds or
// JoinTimeout passes.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ErrJoin: no member of Config.Join could be joined within JoinTimeout.
var ErrJoin = errors.New("cluster: could not join")

// Backoff between join attempts: it doubles from the first to the last.
const (
	joinBackoffFirst = 100 * time.Millisecond
	joinBackoffMax   = 5 * time.Second
)

// joinLoop joins cfg.Join, retrying with backoff, and records the outcome.
func (c *Cluster) joinLoop() {
	defer close(c.joinDone)
	if len(c.cfg.Join) == 0 {
		return
	}
	deadline := time.Now().Add(c.cfg.JoinTimeout)
	backoff := joinBackoffFirst
	for attempt := 1; ; attempt++ {
		n, err := c.ml.Join(c.cfg.Join)
		if err == nil && n > 0 {
			c.log.Info("joined the cluster", zap.Int("contacted", n), zap.Int("attempt", attempt), zap.Int("members", c.ml.NumMembers()))
			return
		}
		if err == nil {
			err = errors.New("no member answered")
		}
		select {
		case <-c.stop:
			c.joinErr = ErrClosed
			return
		default:
		}
		if time.Now().Add(backoff).After(deadline) {
			c.joinErr = fmt.Errorf("%w %v within %s: %v", ErrJoin, c.cfg.Join, c.cfg.JoinTimeout, err)
			c.log.Error("giving up joining; this node stays a cluster of its own until another joins it",
				zap.Strings("join", c.cfg.Join), zap.Int("attempts", attempt), zap.Error(err))
			return
		}
		c.log.Warn("joining the cluster failed; retrying", zap.Strings("join", c.cfg.Join), zap.Int("attempt", attempt),
			zap.Duration("backoff", backoff), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-c.stop:
			t.Stop()
			c.joinErr = ErrClosed
			return
		case <-t.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// WaitJoin waits until joining ends: nil once joined (at once without
// Config.Join), an error wrapping ErrJoin once it gave up, ErrClosed if
// the Cluster closed first, or ctx's error.
func (c *Cluster) WaitJoin(ctx context.Context) error {
	select {
	case <-c.joinDone:
		return c.joinErr
	case <-ctx.Done():
		return ctx.Err()
	}
}
