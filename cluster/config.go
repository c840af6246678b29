// Config of a Cluster: where it gossips, whom it joins, its secret.
package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config of a Cluster. Only Bind is required.
type Config struct {
	// Name is this node's name in the cluster, unique among its members;
	// empty means the hostname, a dash and 6 random hex digits.
	Name string
	// Bind is the gossip address, HOST:PORT, both TCP and UDP; port 0
	// picks a free one. A host that is not loopback requires Token.
	Bind string
	// Advertise is the HOST:PORT peers should gossip to, when it is not
	// the bound one (NAT, a wildcard Bind on a machine with several
	// addresses); empty means the bound address (for a wildcard, the
	// machine's private address).
	Advertise string
	// Join lists members' gossip addresses (HOST:PORT); empty starts a
	// cluster of one. Joining runs in the background: New returns at once.
	Join []string
	// JoinTimeout bounds how long joining is retried (with backoff); zero
	// means 60 s.
	JoinTimeout time.Duration
	// Token is the cluster's secret: gossip is encrypted and authenticated
	// with a key derived from it, and a node with another token cannot
	// join. Empty gossips in clear text, allowed on loopback only.
	Token string
	// Load reports this node's load; it is called every LoadInterval and
	// the record is gossiped when it changes. Nil gossips an empty Load.
	Load func() Load
	// LoadInterval is how often Load is called; zero means 100 ms.
	LoadInterval time.Duration
	// OnEvent, when set, is called for every change of a member (joined,
	// updated, left, dead), in order, from one goroutine of the Cluster;
	// it may block, which only delays later events.
	OnEvent func(Event)
	// Forget is how long a dead or departed member stays in Members; zero
	// means 10 minutes.
	Forget time.Duration

	// tune, when set, replaces tuneLAN on memberlist's DefaultLANConfig
	// (tests measure memberlist's own defaults with a no-op).
	tune func(*memberlist.Config)
}

func (c *Config) validate() error {
	if c.Bind == "" {
		return errors.New("cluster: no gossip address")
	}
	host, _, err := net.SplitHostPort(c.Bind)
	if err != nil {
		return fmt.Errorf("cluster: gossip address %q: %w", c.Bind, err)
	}
	if !IsLoopback(host) && c.Token == "" {
		return fmt.Errorf("cluster: refusing to gossip on %s without a token: it is reachable from the network; pass --token-file or gossip on 127.0.0.1", c.Bind)
	}
	if c.JoinTimeout < 0 || c.LoadInterval < 0 || c.Forget < 0 {
		return errors.New("cluster: negative JoinTimeout, LoadInterval or Forget")
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 60 * time.Second
	}
	if c.LoadInterval == 0 {
		c.LoadInterval = 100 * time.Millisecond
	}
	if c.Forget == 0 {
		c.Forget = 10 * time.Minute
	}
	if c.Load == nil {
		c.Load = func() Load { return Load{} }
	}
	if c.Name == "" {
		c.Name = defaultName()
	}
	return nil
}

// IsLoopback reports whether host names only this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultName is the hostname, a dash and 6 random hex digits: unique
// among nodes, one per host or several.
func defaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "quiver"
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return host + "-" + strconv.Itoa(os.Getpid())
	}
	return host + "-" + hex.EncodeToString(b[:])
}
