// Membership wiring: the node's gossip, its load record, and the peers it
// reports in cluster_status.
package node

import (
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/cluster"
	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// leaveTimeout bounds how long a stopping node waits for its leave to
// spread before it drains.
const leaveTimeout = time.Second

// parts are what a node's load record is read from.
type parts struct {
	flight  string // the Flight address peers dial
	version string
	sched   *scheduler.Scheduler
	pool    *udf.WorkerPool // nil without Python workers
	objects *objectstore.Store
	cat     *udf.Catalog
}

// load is this node's load record now.
func (p parts) load() cluster.Load {
	ss := p.sched.Stats()
	l := cluster.Load{Flight: p.flight, Owner: p.objects.Owner(), Version: p.version, SpilledIn: ss.SpilledIn, SpilledOut: ss.SpilledOut,
		Held: int(ss.HeldTasks)}
	for _, ln := range ss.Lanes {
		switch ln.Lane {
		case scheduler.LaneNative.String():
			l.Executors, l.ExecutorsBusy, l.QueuedNative = ln.Slots, ln.Running, ln.Queued
		case scheduler.LaneWorkers.String():
			l.Workers, l.WorkersBusy, l.Queued = ln.Slots, ln.Running, ln.Queued
		}
	}
	st := p.objects.Stats()
	l.StoreBytes, l.StoreLimit = st.MemoryBytes, st.MemoryLimitBytes
	for _, f := range p.cat.List() {
		l.Warm = append(l.Warm, cluster.WarmHash(f.Name()))
	}
	return l
}

// joinCluster starts the node's membership on cfg.Gossip, or on a free
// port when that fails and cfg.GossipFallback allows it.
func joinCluster(cfg Config, p parts, log *zap.Logger) (*cluster.Cluster, error) {
	ccfg := cluster.Config{Name: cfg.Name, Bind: cfg.Gossip, Join: cfg.Join, JoinTimeout: cfg.JoinTimeout,
		Token: cfg.Token, Load: p.load}
	c, err := cluster.New(ccfg, log)
	if err != nil && cfg.GossipFallback {
		host, _, _ := net.SplitHostPort(cfg.Gossip)
		log.Warn("the default gossip port is not free; gossiping on a free port instead (name it with --join on other nodes, or pass --gossip)",
			zap.String("gossip", cfg.Gossip), zap.Error(err))
		ccfg.Bind = net.JoinHostPort(host, "0")
		c, err = cluster.New(ccfg, log)
	}
	if err != nil {
		return nil, fmt.Errorf("node: --gossip: %w", err)
	}
	return c, nil
}

// peerAddr is the Flight address peers dial: the bound TCP address, with
// a wildcard host replaced by the host this node gossips from, as
// grpc+tls://host:port when the node serves TLS.
func peerAddr(tcp, gossip string, useTLS bool) string {
	host, port, err := net.SplitHostPort(tcp)
	if err != nil || tcp == "" {
		return tcp
	}
	addr := tcp
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ghost, _, err := net.SplitHostPort(gossip); err == nil {
			addr = net.JoinHostPort(ghost, port)
		}
	}
	if useTLS {
		return "grpc+tls://" + addr
	}
	return addr
}

// ownerAddr finds the Flight address of the live member whose objects
// carry owner tag tag (suspect counts as alive, as for tasks): the
// puller's PullConfig.Owner.
func ownerAddr(c *cluster.Cluster) func(tag string) (string, bool) {
	return func(tag string) (string, bool) {
		for _, m := range c.Members() {
			if m.Load.Owner == tag && m.Load.Flight != "" && (m.State == cluster.StateAlive || m.State == cluster.StateSuspect) {
				return m.Load.Flight, true
			}
		}
		return "", false
	}
}

// membership adapts the cluster's view for cluster_status.
func membership(c *cluster.Cluster) func() flight.Membership {
	return func() flight.Membership {
		self := c.Self()
		m := flight.Membership{Name: self.Name, Gossip: self.GossipAddr, Peers: []flight.PeerStatus{}}
		for _, p := range c.Members() {
			if p.Name == self.Name {
				continue
			}
			l := p.Load
			m.Peers = append(m.Peers, flight.PeerStatus{Name: p.Name, Address: l.Flight, Gossip: p.GossipAddr,
				State: string(p.State), Version: l.Version, Workers: l.Workers, WorkersBusy: l.WorkersBusy,
				Executors: l.Executors, Queued: l.Queued, TasksSpilledIn: l.SpilledIn, TasksSpilledOut: l.SpilledOut,
				ObjectStoreBytes: l.StoreBytes, ObjectStoreLimitBytes: l.StoreLimit, WarmFunctions: len(l.Warm),
				RTTMs: float64(p.RTT) / float64(time.Millisecond)})
		}
		return m
	}
}
