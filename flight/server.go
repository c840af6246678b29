// Server: one gRPC server with the Flight service, on any number of listeners.
package flight

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"

	"github.com/quiver-udf/quiver/internal/record"
	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// DefaultMaxMessageBytes is the largest gRPC message a node accepts or
// sends: one input batch, since pyarrow sends a batch as one message.
const DefaultMaxMessageBytes = 512 << 20

// Config of a Server.
type Config struct {
	// Token, when not empty, is required on every call as
	// "authorization: Bearer <token>".
	Token string
	// MaxMessageBytes bounds one gRPC message; zero means
	// DefaultMaxMessageBytes. A larger message fails with ResourceExhausted.
	MaxMessageBytes int
	// TLS, when set, serves TLS on every listener.
	TLS credentials.TransportCredentials
	// PeerCerts: peer calls (spilled tasks, fetch_function) must present
	// a client certificate that TLS verified (the node has a CA: the TLS
	// configuration verifies client certificates when given). Calls of
	// ordinary clients need none.
	PeerCerts bool
	// Version is reported by health and cluster_status.
	Version string
	// Address and Socket are reported by cluster_status.
	Address, Socket string
	// Mem allocates Arrow memory; nil means memory.DefaultAllocator.
	Mem memory.Allocator
	// Workers runs registered Python functions; nil refuses registration.
	Workers *udf.WorkerPool
	// Recorder, when set, records the input batches of every call (quiver
	// start --record); the caller owns it and closes it after Shutdown.
	Recorder *record.Recorder
	// Objects serves DoPut, DoGet, object_release and the session's
	// objects, and, where it has a shared-memory directory
	// (objectstore.Config.ShmDir), object_adopt and object_locate to
	// callers on the unix socket. Nil refuses them (Unimplemented). The
	// caller owns it and closes it after Shutdown.
	Objects *objectstore.Store
	// Peers, when set, fetches the Python functions of spilled calls from
	// their origin (fetch_function). Nil: a spilled call of a function this
	// node lacks is refused (NotFound). The caller owns and closes it.
	Peers *PeerClient
	// Pull, when set, reads the objects other nodes own (ids naming
	// another owner tag) that DoGet or a session's get asks for, unless a
	// client published one under that id here. Nil: every id is looked up
	// here only. The caller owns it and closes it after Shutdown.
	Pull *Puller
	// Members, when set, reports the cluster's membership: cluster_status
	// lists the peers and totals. Nil: this node is alone.
	Members func() Membership
	// OnRoom, when set, takes the room reports peers send (the room
	// action); it must be quick and safe for concurrent use. Nil: this
	// node is alone and refuses them.
	OnRoom func(Room)
	// OnCall, when set, is told of every call of a function as it ends
	// (not of sessions' requests); it must be quick and safe for
	// concurrent use: metrics observe calls through it.
	OnCall func(CallRecord)
}

func (c *Config) validate() error {
	if c.MaxMessageBytes < 0 {
		return errors.New("flight: negative MaxMessageBytes")
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Mem == nil {
		c.Mem = memory.DefaultAllocator
	}
	return nil
}

// Server is the Flight service of one node.
type Server struct {
	flight.BaseFlightServer
	cfg      Config
	sched    *scheduler.Scheduler
	cat      *udf.Catalog
	log      *zap.Logger
	grpc     *grpc.Server
	started  time.Time
	draining atomic.Bool
	drain    chan struct{}             // closed when Shutdown starts: sessions end
	sessions atomic.Int64              // session streams open now
	lane     atomic.Pointer[laneState] // the same-host lane, once served (lane.go)
	roomsIn  atomic.Int64              // room reports taken (room.go)
	drainMu  sync.Once
	peerFns  peerFuncs // functions of peers' spilled calls (peerfuncs.go)
	spills   spills    // spilled calls running, refused when draining (drain.go)
	calls    callLog   // per-function sums and the last errors (calls.go)
}

// New builds a server over a scheduler and a catalog it does not own.
func New(cfg Config, sched *scheduler.Scheduler, cat *udf.Catalog, log *zap.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, sched: sched, cat: cat, log: log, started: time.Now(), drain: make(chan struct{})}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(cfg.MaxMessageBytes),
		grpc.InitialWindowSize(16 << 20),
		grpc.InitialConnWindowSize(16 << 20),
		grpc.WriteBufferSize(1 << 20),
		grpc.ReadBufferSize(1 << 20),
		grpc.ForceServerCodecV2(newCodec()),
		experimental.BufferPool(readPool),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(cfg.TLS))
	}
	if cfg.Token != "" {
		opts = append(opts, grpc.ChainUnaryInterceptor(unaryAuth(cfg.Token)), grpc.ChainStreamInterceptor(streamAuth(cfg.Token)))
	}
	s.grpc = grpc.NewServer(opts...)
	flight.RegisterFlightServiceServer(s.grpc, s)
	return s, nil
}

// Serve serves lis until Shutdown. Call it once per listener.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops taking calls (new ones get Unavailable, spilled ones
// ResourceExhausted), waits for the calls in flight until ctx ends, then
// closes every connection. Spilled calls finish before the listeners
// close, so that peers sending one late are refused, not cut off.
func (s *Server) Shutdown(ctx context.Context) {
	s.draining.Store(true)
	s.drainMu.Do(func() { close(s.drain) })
	s.awaitSpills(ctx)
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("drain timed out; cancelling the calls still in flight")
		s.grpc.Stop()
		<-done
	}
	s.awaitLanes(ctx)
}

// finish maps err to a gRPC status and logs failures worth an operator's eye.
func (s *Server) finish(method string, err error) error {
	if err == nil {
		return nil
	}
	st := toStatus(err)
	switch c := codeOf(st); c {
	case codes.Internal:
		s.log.Error("call failed", zap.String("method", method), zap.Error(err))
	case codes.Canceled:
	default:
		s.log.Debug("call refused", zap.String("method", method), zap.Stringer("code", c), zap.Error(err))
	}
	return st
}

// Health is the body of the health action.
type Health struct {
	Status  string `json:"status"` // "serving" or "draining"
	Version string `json:"version"`
	// Owner is the owner tag that the ids of this node's objects carry
	// (objectstore.NewOwnedID): a client that names its own objects
	// (a session put's id) prefixes it so that other nodes find them.
	// Absent without an object store or a tag.
	Owner string `json:"owner,omitempty"`
}

// Health reports whether the node takes calls.
func (s *Server) Health() Health {
	h := Health{Status: "serving", Version: s.cfg.Version}
	if s.cfg.Objects != nil {
		h.Owner = s.cfg.Objects.Owner()
	}
	if s.draining.Load() {
		h.Status = "draining"
	}
	return h
}

// NodeStatus is this node in ClusterStatus, in full.
type NodeStatus struct {
	// Name and Gossip are its name and gossip address in the cluster, ""
	// without membership; State is "alive".
	Name      string   `json:"name"`
	Gossip    string   `json:"gossip"`
	State     string   `json:"state"`
	Address   string   `json:"address"`
	Socket    string   `json:"socket"`
	Version   string   `json:"version"`
	Status    string   `json:"status"`
	UptimeS   float64  `json:"uptime_s"`
	PID       int      `json:"pid"`
	RSSBytes  int64    `json:"rss_bytes"`
	Functions []string `json:"functions"`
	scheduler.Stats
	udf.PoolStats
	// ObjectStore is absent when the node has no object store.
	ObjectStore *objectstore.Stats `json:"object_store,omitempty"`
	// ShmDir is the shared-memory directory for objects, "" when off.
	ShmDir string `json:"shm_dir"`
	// Sessions is the number of session streams open now.
	Sessions int64 `json:"sessions"`
	// WorkersBusy of the live workers run a task; Queued tasks wait for a
	// slot.
	WorkersBusy int `json:"workers_busy"`
	Queued      int `json:"queued"`
	// RoomReportsIn counts the room reports peers sent this node and
	// RoomReportsOut those it sent them (the room action).
	RoomReportsIn  int64 `json:"room_reports_in"`
	RoomReportsOut int64 `json:"room_reports_out"`
	// Calls sums the calls of each function since the node started (at
	// most MaxReportedFunctions names, then "other"), by name.
	Calls []FunctionCalls `json:"calls"`
	// RecentErrors are the last calls that failed (at most 50), newest
	// first; cancelled calls are left out.
	RecentErrors []CallError `json:"recent_errors"`
}

// ClusterStatus is the body of the cluster_status action: this node (the
// only entry of Nodes), the other members, and totals over all.
type ClusterStatus struct {
	Nodes  []NodeStatus  `json:"nodes"`
	Peers  []PeerStatus  `json:"peers"`
	Totals ClusterTotals `json:"totals"`
}

// ClusterStatus reports this node in full and its peers as gossiped.
func (s *Server) ClusterStatus() ClusterStatus {
	var names []string
	for _, f := range s.cat.List() {
		names = append(names, f.Name())
	}
	n := NodeStatus{
		Address:   s.cfg.Address,
		Socket:    s.cfg.Socket,
		Version:   s.cfg.Version,
		Status:    s.Health().Status,
		UptimeS:   time.Since(s.started).Seconds(),
		PID:       os.Getpid(),
		RSSBytes:  rssBytes(),
		Functions: names,
		Stats:     s.sched.Stats(),
	}
	if s.cfg.Workers != nil {
		n.PoolStats = s.cfg.Workers.Stats()
	}
	if s.cfg.Objects != nil {
		st := s.cfg.Objects.Stats()
		n.ObjectStore = &st
		n.ShmDir = s.cfg.Objects.ShmDir()
	}
	n.Sessions = s.sessions.Load()
	n.RoomReportsIn = s.roomsIn.Load()
	if s.cfg.Peers != nil {
		n.RoomReportsOut = s.cfg.Peers.roomsOut.Load()
	}
	n.State = "alive"
	n.WorkersBusy = workersBusy(n.PoolStats)
	for _, l := range n.Stats.Lanes {
		n.Queued += l.Queued
	}
	n.Calls, n.RecentErrors = s.calls.summary()
	peers := []PeerStatus{}
	if s.cfg.Members != nil {
		m := s.cfg.Members()
		n.Name, n.Gossip = m.Name, m.Gossip
		if m.Peers != nil {
			peers = m.Peers
		}
	}
	return ClusterStatus{Nodes: []NodeStatus{n}, Peers: peers, Totals: totals(n, peers)}
}

// rssBytes reads this process's resident set size from /proc, or -1.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
