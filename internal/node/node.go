// Wiring: Run builds the node's parts from its Config and serves.
package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/cluster"
	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/record"
	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// Run serves until ctx ends, then drains calls in flight and returns.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	fcfg := flight.Config{Token: cfg.Token, MaxMessageBytes: cfg.MaxMessageBytes, Version: cfg.Version, Socket: cfg.Socket,
		PeerCerts: cfg.TLSCA != ""}
	serverTLS, peerTLS, err := tlsCreds(cfg)
	if err != nil {
		return err
	}
	fcfg.TLS = serverTLS
	if cfg.Record != "" {
		// The queue may hold one largest message: every batch can be recorded.
		queue := int64(cfg.MaxMessageBytes)
		if queue == 0 {
			queue = flight.DefaultMaxMessageBytes
		}
		rec, err := record.New(record.Config{Dir: cfg.Record, MaxBytes: cfg.RecordMaxBytes, QueueBytes: queue}, log.Named("record"))
		if err != nil {
			return err
		}
		// Closed after the server has drained (deferred calls run last first).
		defer rec.Close()
		fcfg.Recorder = rec
		log.Info("recording calls", zap.String("dir", cfg.Record), zap.Int64("max_bytes", rec.MaxBytes()))
	}
	objects, err := objectstore.New(objectstore.Config{MemoryBytes: cfg.ObjectStoreMemory, SpillDir: cfg.SpillDir,
		ShmDir: shmParent(cfg.ShmDir), Owner: objectstore.NewOwnerTag()}, log.Named("objects"))
	if err != nil {
		return err
	}
	// Closed after the server has drained (deferred calls run last first).
	defer objects.Close()
	fcfg.Objects = objects
	// Bound after everything that touches the system; what follows fails
	// only on a bad configuration. The workers' environment names the
	// node's TCP address, known once bound (port 0).
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	defer lis.close()
	var lane net.Listener // the same-host lane for sessions, beside the socket
	if cfg.Socket != "" {
		if lane, err = listenUnix(cfg.Socket + laneSuffix); err != nil {
			return err
		}
		defer lane.Close()
	}
	mets, err := listenMetrics(cfg, log.Named("metrics"))
	if err != nil {
		return err
	}
	// Closed after the server has drained: scrapes see the drain.
	defer mets.close()
	var pool *udf.WorkerPool
	if cfg.Workers >= 0 {
		pcfg := udf.PoolConfig{Workers: cfg.Workers, Python: cfg.Python, Output: os.Stderr, Env: workerEnv(cfg, lis.tcpAddr())}
		pool, err = udf.NewWorkerPool(pcfg, log.Named("workers"))
		if err != nil {
			return err
		}
		defer pool.Close()
	}
	// Python tasks run against the workers, native ones against the cores.
	scfg := scheduler.Config{Executors: cfg.Executors}
	if pool != nil {
		scfg.Workers = pool.Size()
	}
	self := peerAddr(lis.tcpAddr(), cfg.Gossip, cfg.TLSCert != "")
	peers := flight.NewPeerClient(flight.PeerConfig{Token: cfg.Token, TLS: peerTLS, Origin: self, MaxMessageBytes: cfg.MaxMessageBytes})
	// Closed after the server has drained (deferred calls run last first).
	defer peers.Close()
	var src *clusterPeers
	var rem *remote
	var rooms *roomSender
	pctx, stopPeers := context.WithCancel(context.Background()) // ends at return, after the drain
	var peerLoops sync.WaitGroup
	defer func() { stopPeers(); peerLoops.Wait() }()
	if cfg.Gossip != "" {
		src = &clusterPeers{}
		rem = newRemote(src, peers)
		peerLoops.Go(func() { rem.watch(pctx) })
		rooms = newRoomSender(src, src.selfName, peers, log.Named("room"))
		scfg.Remote, scfg.Placement, scfg.OnRoom = rem, scheduler.Hybrid{}, rooms.kick
	}
	sched, err := scheduler.New(scfg, log.Named("scheduler"))
	if err != nil {
		return err
	}
	defer sched.Close()
	if rooms != nil {
		peerLoops.Go(func() { rooms.run(pctx, func() []scheduler.LaneStats { return sched.Stats().Lanes }) })
		fcfg.OnRoom = func(r flight.Room) {
			if rem.observeRoom(r) {
				sched.Wake()
			}
		}
	}
	fcfg.Workers = pool
	fcfg.Address = lis.tcpAddr()
	cat := udf.NewBuiltinCatalog()
	var members *cluster.Cluster
	gossip := ""
	if cfg.Gossip != "" {
		p := parts{flight: self, version: cfg.Version, sched: sched, pool: pool,
			objects: objects, cat: cat}
		if members, err = joinCluster(cfg, p, log.Named("cluster")); err != nil {
			return err
		}
		// Closed last but one: the node leaves (below) before it drains.
		defer members.Close()
		gossip = members.Self().GossipAddr
		src.c.Store(members)
		fcfg.Members = membership(members)
		pull, err := flight.NewPuller(flight.PullConfig{Owner: ownerAddr(members)}, objects, peers, log.Named("pull"))
		if err != nil {
			return err
		}
		// Closed after the server has drained (deferred calls run last first).
		defer pull.Close()
		fcfg.Pull = pull
	}
	fcfg.Peers = peers
	mets.hook(&fcfg)
	srv, err := flight.New(fcfg, sched, cat, log.Named("flight"))
	if err != nil {
		return err
	}
	mets.serve(srv)
	cl := newClients()
	errc := make(chan error, len(lis)+1)
	for _, l := range lis {
		go func(l net.Listener) { errc <- srv.Serve(cl.wrap(l)) }(l)
	}
	if lane != nil {
		go func() { errc <- srv.ServeLane(cl.wrap(lane), cfg.Socket+laneSuffix) }()
	}
	lctx, stopWatch := context.WithCancel(ctx)
	ended, watched := watchLifetime(lctx, cfg, cl)
	defer watched()
	defer stopWatch()
	log.Info("serving", zap.String("tcp", lis.tcpAddr()), zap.String("socket", cfg.Socket),
		zap.Int("executors", sched.Executors()), zap.Int("python_workers", scfg.Workers),
		zap.Int64("object_store_bytes", objects.Limit()), zap.String("spill_dir", objects.Dir()),
		zap.String("shm_dir", objects.ShmDir()), zap.String("gossip", gossip), zap.String("metrics", mets.addr()))
	if cfg.MetricsReady != nil && mets != nil {
		cfg.MetricsReady(mets.addr())
	}
	if cfg.Ready != nil {
		cfg.Ready(lis.tcpAddr(), cfg.Socket, gossip)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	case why := <-ended:
		log.Info("ending by itself", zap.String("why", why))
	}
	if members != nil {
		// Peers stop sending work here before the calls in flight drain;
		// what they send meanwhile is refused and runs elsewhere.
		srv.RefuseSpills()
		if err := members.Leave(leaveTimeout); err != nil {
			log.Warn("leaving the cluster", zap.Error(err))
		}
	}
	log.Info("draining", zap.Duration("timeout", cfg.DrainTimeout))
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	srv.Shutdown(dctx)
	log.Info("stopped")
	return serveErr
}

// shmParent is where the object store makes its shared-memory directory:
// the node's ShmDir, with "" meaning the default and "none" none.
func shmParent(dir string) string {
	switch dir {
	case "none":
		return ""
	case "":
		return objectstore.DefaultShmParent
	}
	return dir
}

// workerEnv tells Python workers how to reach their own node, so that code
// in a task or UDF can call quiver.connect() (nested tasks, quiver.get):
// over the socket when there is one, else at the bound TCP address tcp.
func workerEnv(cfg Config, tcp string) []string {
	addr := ""
	switch {
	case cfg.Socket != "":
		addr = "grpc+unix://" + cfg.Socket
	case cfg.TLSCert != "":
		addr = "grpc+tls://" + tcp
	default:
		addr = "grpc://" + tcp
	}
	env := []string{"QUIVER_ADDRESS=" + addr}
	if cfg.Token != "" {
		env = append(env, "QUIVER_TOKEN="+cfg.Token)
	}
	return env
}

// laneSuffix names the lane's socket: the Flight socket's path with it.
const laneSuffix = ".lane"

// listeners are the node's bound listeners: TCP first (if any), then the
// unix socket.
type listeners []net.Listener

// listen binds TCP first (if any), then the unix socket.
func listen(cfg Config) (listeners, error) {
	var lis listeners
	if cfg.Listen != "" {
		l, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		lis = append(lis, l)
	}
	if cfg.Socket != "" {
		l, err := listenUnix(cfg.Socket)
		if err != nil {
			lis.close()
			return nil, err
		}
		lis = append(lis, l)
	}
	return lis, nil
}

// tcpAddr is the bound TCP address (port 0 resolved), or "".
func (lis listeners) tcpAddr() string {
	for _, l := range lis {
		if l.Addr().Network() == "tcp" {
			return l.Addr().String()
		}
	}
	return ""
}

// close closes every listener; the socket's file goes with its listener.
// Serving closes them too, at Shutdown: closing them again does nothing.
func (lis listeners) close() {
	for _, l := range lis {
		l.Close()
	}
}

// listenUnix binds a user-only socket, replacing a stale one but never a
// live node's.
func listenUnix(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("node: a node already serves %s; stop it first (quiver stop)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("node: removing stale socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	return l, nil
}
