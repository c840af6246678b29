// The peer client: how this node runs a spilled task on another node, reads
// its load and fetches a function from it, over one connection per peer.
package flight

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// PeerConfig configures a PeerClient.
type PeerConfig struct {
	// Token is the cluster token, sent to peers as "authorization: Bearer
	// <token>"; empty sends none.
	Token string
	// TLS dials peers whose address is grpc+tls://host:port (they gossip
	// it so when they serve TLS): the cluster's CA and this node's client
	// certificate. Nil dials them with the system's roots and no client
	// certificate. Other addresses are dialed in plaintext.
	TLS credentials.TransportCredentials
	// Origin is this node's Flight address (host:port, or
	// grpc+tls://host:port) as peers reach it: where they fetch the Python
	// functions it spills (HeaderOrigin).
	Origin string
	// MaxMessageBytes bounds one message either way; zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Mem allocates the results read from peers; nil means
	// memory.DefaultAllocator.
	Mem memory.Allocator
}

// PeerClient talks to peers: it runs spilled tasks (the Run half of
// scheduler.Remote), reads their cluster_status and fetches functions.
// It keeps one gRPC connection per peer address, reused by every call;
// it is safe for concurrent use. Close closes the connections.
type PeerClient struct {
	cfg      PeerConfig
	mu       sync.Mutex
	conns    map[string]*peerConn
	roomsOut atomic.Int64 // room reports peers took (room.go)
}

type peerConn struct {
	cc     *grpc.ClientConn
	client flight.FlightServiceClient
}

// NewPeerClient returns a client that dials peers as they are first used.
func NewPeerClient(cfg PeerConfig) *PeerClient {
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Mem == nil {
		cfg.Mem = memory.DefaultAllocator
	}
	return &PeerClient{cfg: cfg, conns: map[string]*peerConn{}}
}

// Close closes every connection. Calls in flight fail.
func (p *PeerClient) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, c := range p.conns {
		errs = append(errs, c.cc.Close())
		delete(p.conns, addr)
	}
	return errors.Join(errs...)
}

// conn returns the connection to addr (host:port, grpc://host:port or
// grpc+tls://host:port), dialing it once. grpc.NewClient connects lazily
// and reconnects by itself.
func (p *PeerClient) conn(addr string) (*peerConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	creds := insecure.NewCredentials()
	target, useTLS := strings.CutPrefix(addr, "grpc+tls://")
	if useTLS {
		creds = p.cfg.TLS
		if creds == nil {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
		}
	} else {
		target = strings.TrimPrefix(strings.TrimPrefix(addr, "grpc+tcp://"), "grpc://")
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(p.cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(p.cfg.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("flight: peer %s: %w", addr, err)
	}
	c := &peerConn{cc: cc, client: flight.NewFlightServiceClient(cc)}
	p.conns[addr] = c
	return c, nil
}

// outgoing adds the token and the headers kv to ctx.
func (p *PeerClient) outgoing(ctx context.Context, kv ...string) context.Context {
	if p.cfg.Token != "" {
		kv = append(kv, "authorization", "Bearer "+p.cfg.Token)
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// spillHeaders are the headers of a spilled task: the call's options, no
// retries on the peer (the origin retries), the task's rows as one task.
func (p *PeerClient) spillHeaders(t scheduler.RemoteTask) []string {
	kv := []string{HeaderSpilled, "1", HeaderRetries, "0", HeaderOnError, t.OnError.String(),
		HeaderRowsPerTask, strconv.FormatInt(max(t.Rec.NumRows(), 1), 10)}
	if t.Table {
		kv = append(kv, HeaderTableFunction, "1")
	}
	if len(t.TaskContext) > 0 {
		kv = append(kv, HeaderTaskContext, string(t.TaskContext))
	}
	if py, ok := t.Func.(*udf.PyFunc); ok {
		kv = append(kv, HeaderFuncHash, py.Hash(), HeaderOrigin, p.cfg.Origin)
	}
	return kv
}

// action runs DoAction typ with body on addr and returns the first result.
func (p *PeerClient) action(ctx context.Context, addr, typ string, body []byte) ([]byte, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(p.outgoing(ctx))
	defer cancel()
	stream, err := c.client.DoAction(ctx, &flight.Action{Type: typ, Body: body})
	if err != nil {
		return nil, err
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

// ClusterStatus reads the cluster_status of the peer at addr.
func (p *PeerClient) ClusterStatus(ctx context.Context, addr string) (ClusterStatus, error) {
	var st ClusterStatus
	body, err := p.action(ctx, addr, ActionClusterStatus, nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("flight: peer %s: cluster_status: %w", addr, err)
	}
	return st, nil
}

// FetchFunction asks the node at addr for the registration of the Python
// function of content hash hash: a register action's body.
func (p *PeerClient) FetchFunction(ctx context.Context, addr, hash string) ([]byte, error) {
	return p.action(ctx, addr, ActionFetchFunction, []byte(hash))
}
