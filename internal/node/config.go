// The node's Config and its checks.
package node

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/quiver-udf/quiver/cluster"
)

// Config of a node. The zero value is not valid: Listen or Socket is needed.
type Config struct {
	// Listen is the TCP address (host:port); empty serves no TCP. A host
	// that is not loopback requires Token.
	Listen string
	// Socket is the unix socket path; empty serves no socket. It is made
	// user-only (0600).
	Socket string
	// Executors is the number of native executors; zero means one per core.
	Executors int
	// Workers is the number of Python worker processes; zero means one per
	// core, negative means none (Python functions are then refused).
	Workers int
	// Python is the workers' interpreter; empty means python3.
	Python string
	// Token, when set, is required from every client.
	Token string
	// TLSCert and TLSKey, both set, serve TLS on TCP and the socket; the
	// node then gossips its Flight address as grpc+tls://host:port, and
	// peers dial it with TLS.
	TLSCert, TLSKey string
	// TLSCA is the cluster's CA (PEM): peers' certificates are verified
	// against it, the node presents TLSCert to them as a client
	// certificate, and peer calls to this node must present one it signed.
	// Empty verifies peers against the system's roots and asks for no
	// client certificate.
	TLSCA string
	// MaxMessageBytes bounds one gRPC message; zero means the flight default.
	MaxMessageBytes int
	// DrainTimeout bounds how long shutdown waits for calls in flight; zero
	// means 30 s.
	DrainTimeout time.Duration
	// Version is reported by health and status.
	Version string
	// Record, when set, is a directory where the input of every call is
	// recorded (package record); empty records nothing.
	Record string
	// RecordMaxBytes bounds the recording on disk; zero means 1 GiB.
	RecordMaxBytes int64
	// ObjectStoreMemory bounds the object store's memory, in bytes; zero
	// means 30% of this machine's memory (objectstore.DefaultMemoryBytes).
	ObjectStoreMemory int64
	// SpillDir is where the object store spills; empty means os.TempDir().
	SpillDir string
	// ShmDir is where the node makes its private shared-memory directory,
	// through which clients on this host put and get large objects
	// (objectstore.Config.ShmDir); empty means /dev/shm, "none" none. Where
	// it cannot be made, the node serves without it.
	ShmDir string
	// WatchPID, when not zero, is a process the node serves: the node drains
	// and exits once that process is gone (a driver killed with kill -9
	// leaves no node behind).
	WatchPID int
	// IdleExit, when not zero, ends the node once it has had no client
	// connection for that long (a node started on demand does not outlive
	// its users). Zero means never.
	IdleExit time.Duration
	// Gossip is the membership address (HOST:PORT, TCP and UDP; port 0
	// picks a free one); empty means no membership: the node is alone. A
	// host that is not loopback requires Token, which also keys the gossip.
	Gossip string
	// GossipFallback: when Gossip cannot be bound (a default port taken by
	// another node on this host), gossip on a free port instead of failing.
	GossipFallback bool
	// Join lists members' gossip addresses to join, in the background;
	// empty starts a cluster.
	Join []string
	// JoinTimeout bounds how long joining is retried; zero means 60 s.
	JoinTimeout time.Duration
	// Name is the node's name in the cluster; empty means the hostname and
	// a random suffix.
	Name string
	// Metrics is the HTTP address (HOST:PORT; port 0 picks a free one) of
	// the node's Prometheus metrics, dashboard and JSON status (package
	// metrics); empty serves none. A host that is not loopback requires
	// Token, which the endpoints then require too.
	Metrics string
	// MetricsReady, if set, is called with the bound metrics address before
	// Ready.
	MetricsReady func(addr string)
	// Ready, if set, is called once the listeners are bound, with the real
	// TCP address (port 0 resolved), the socket path and the bound gossip
	// address ("" without membership).
	Ready func(tcp, socket, gossip string)
}

func (c *Config) validate() error {
	if c.Listen == "" && c.Socket == "" {
		return errors.New("node: nothing to serve: give a TCP address, a socket, or both")
	}
	if c.Listen != "" {
		loop, err := isLoopback(c.Listen)
		if err != nil {
			return err
		}
		if !loop && c.Token == "" {
			return fmt.Errorf("node: refusing to listen on %s without a token: it is reachable from the network; pass --token-file or listen on 127.0.0.1", c.Listen)
		}
	}
	if c.Gossip != "" {
		loop, err := isLoopback(c.Gossip)
		if err != nil {
			return err
		}
		if !loop && c.Token == "" {
			return fmt.Errorf("node: refusing to gossip on %s without a token: it is reachable from the network; pass --token-file or gossip on 127.0.0.1", c.Gossip)
		}
	} else if len(c.Join) > 0 {
		return errors.New("node: --join needs a gossip address")
	}
	if c.Metrics != "" {
		loop, err := isLoopback(c.Metrics)
		if err != nil {
			return err
		}
		if !loop && c.Token == "" {
			return fmt.Errorf("node: refusing to serve metrics on %s without a token: it is reachable from the network; pass --token-file or serve them on 127.0.0.1", c.Metrics)
		}
	}
	if c.JoinTimeout < 0 {
		return errors.New("node: negative --join-timeout")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("node: --tls-cert and --tls-key go together")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		return errors.New("node: --tls-ca needs --tls-cert and --tls-key")
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.RecordMaxBytes < 0 {
		return errors.New("node: negative --record-max-bytes")
	}
	if c.ObjectStoreMemory < 0 {
		return errors.New("node: negative --object-store-memory")
	}
	if c.WatchPID < 0 || c.IdleExit < 0 {
		return errors.New("node: negative --watch-pid or --idle-exit")
	}
	return nil
}

// isLoopback reports whether a host:port address binds only loopback.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("node: address %q: %w", addr, err)
	}
	return cluster.IsLoopback(host), nil
}
