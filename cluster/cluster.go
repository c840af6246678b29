// Cluster: this node's membership, its view of the others, and its
// lifetime.
package cluster

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// ErrClosed: the Cluster was closed before the join succeeded.
var ErrClosed = errors.New("cluster: closed")

// updateTimeout bounds how long a load refresh waits for its broadcast to
// be queued for sending; past it the broadcast still goes out.
const updateTimeout = 250 * time.Millisecond

// Cluster is this node's membership. Its methods are safe for concurrent
// use.
type Cluster struct {
	cfg  Config
	log  *zap.Logger
	ml   *memberlist.Memberlist
	d    *delegate
	lw   *logWriter
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	selfAddr string        // the advertised gossip address
	leaving  atomic.Bool   // Leave began: the metadata says so
	joinDone chan struct{} // closed when joining ended
	joinErr  error         // why it failed; read after joinDone
}

// New binds the gossip address and starts gossiping: it returns once
// bound, and joins cfg.Join in the background (WaitJoin waits for it).
func New(cfg Config, log *zap.Logger) (*Cluster, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	meta, err := encodeLoad(cfg.Load(), false)
	if err != nil {
		return nil, err
	}
	d := newDelegate(log, meta, cfg.OnEvent != nil)
	lw := &logWriter{log: log.Named("memberlist"), suspect: d.suspect}
	mc, err := memberlistConfig(cfg, d, lw)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip on %s: %w", cfg.Bind, err)
	}
	// The local node's address is fixed once created; only its metadata
	// changes later (under memberlist's lock, hence never read from it).
	c := &Cluster{cfg: cfg, log: log, ml: ml, d: d, lw: lw, stop: make(chan struct{}), joinDone: make(chan struct{}),
		selfAddr: ml.LocalNode().Address()}
	if cfg.Token == "" {
		log.Warn("gossip is neither encrypted nor authenticated: no token (loopback only)", zap.String("gossip", c.selfAddr))
	}
	log.Info("gossiping", zap.String("name", cfg.Name), zap.String("gossip", c.selfAddr), zap.Strings("join", cfg.Join))
	if cfg.OnEvent != nil {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); d.dispatch(cfg.OnEvent, c.stop) }()
	}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.refreshLoop() }()
	go func() { defer c.wg.Done(); c.joinLoop() }()
	return c, nil
}

// Self is this node.
func (c *Cluster) Self() Member {
	c.d.mu.Lock()
	meta := c.d.meta
	c.d.mu.Unlock()
	l, _ := decodeLoad(meta)
	return Member{Name: c.cfg.Name, GossipAddr: c.selfAddr, State: StateAlive, Load: l}
}

// Members are this node and the others it knows of, alive, suspect, dead
// or left (the last two for Config.Forget), in order of name. Suspect is
// this node's own suspicion (a member that missed its probe and has not
// answered one since); memberlist does not report the suspicions others
// gossip.
func (c *Cluster) Members() []Member {
	out := c.d.list(time.Now(), c.cfg.Forget)
	for i := range out {
		if out[i].Name == c.cfg.Name {
			out[i] = c.Self()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// refreshLoop gossips this node's Load when it changes, checking every
// LoadInterval.
func (c *Cluster) refreshLoop() {
	t := time.NewTicker(c.cfg.LoadInterval)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		b, err := encodeLoad(c.cfg.Load(), c.leaving.Load())
		if err != nil {
			if !warned {
				c.log.Warn("load not gossiped", zap.Error(err))
				warned = true
			}
			continue
		}
		if c.d.setMeta(b) {
			// A timeout only means the broadcast is still queued.
			_ = c.ml.UpdateNode(updateTimeout)
		}
	}
}

// Leave tells the others this node leaves, waiting at most timeout for the
// message to spread, then closes. The others see it as left, not dead.
func (c *Cluster) Leave(timeout time.Duration) error {
	// First the metadata says so: memberlist's own leave message reaches
	// most members as a death.
	c.leaving.Store(true)
	if b, err := encodeLoad(c.cfg.Load(), true); err == nil && c.d.setMeta(b) {
		_ = c.ml.UpdateNode(timeout / 2)
	}
	err := c.ml.Leave(timeout / 2)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close stops gossiping without a word to the others (they will declare
// this node dead) and waits for the Cluster's goroutines.
func (c *Cluster) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		err = c.ml.Shutdown()
		c.wg.Wait()
		c.lw.muted.Store(true)
		c.d.closed.Store(true)
	})
	return err
}
