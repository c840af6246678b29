// The memberlist configuration: failure detector tuning, the gossip key,
// and memberlist's log lines into zap.
package cluster

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// The tuned failure detector (see doc.go for why these values).
const (
	probeInterval  = 200 * time.Millisecond
	probeTimeout   = 100 * time.Millisecond
	suspicionMult  = 2
	gossipInterval = 50 * time.Millisecond
	pushPull       = 15 * time.Second
	tcpTimeout     = 3 * time.Second
)

// tuneLAN sets memberlist's failure detector for a LAN where a node that
// stops answering should be declared dead within about a second.
func tuneLAN(c *memberlist.Config) {
	c.ProbeInterval = probeInterval
	c.ProbeTimeout = probeTimeout
	c.SuspicionMult = suspicionMult
	c.GossipInterval = gossipInterval
	c.PushPullInterval = pushPull
	c.TCPTimeout = tcpTimeout
	c.GossipToTheDeadTime = pushPull
}

// secretKey derives the 32-byte gossip key (AES-256-GCM) from the token.
func secretKey(token string) []byte {
	sum := sha256.Sum256([]byte("quiver-gossip-v1\x00" + token))
	return sum[:]
}

// memberlistConfig builds memberlist's configuration from cfg; d serves as
// its delegate, event delegate and ping delegate, lw as its log.
func memberlistConfig(cfg Config, d *delegate, lw *logWriter) (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	if cfg.tune != nil {
		cfg.tune(c)
	} else {
		tuneLAN(c)
	}
	c.Name = cfg.Name
	host, port, err := splitAddr(cfg.Bind)
	if err != nil {
		return nil, err
	}
	c.BindAddr, c.BindPort = host, port
	c.AdvertisePort = port
	if cfg.Advertise != "" {
		if c.AdvertiseAddr, c.AdvertisePort, err = splitAddr(cfg.Advertise); err != nil {
			return nil, err
		}
	}
	if cfg.Token != "" {
		c.SecretKey = secretKey(cfg.Token)
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	c.Delegate = d
	c.Events = d
	c.Ping = d
	c.Logger = log.New(lw, "", 0)
	return c, nil
}

// splitAddr splits HOST:PORT into an IP and a port; an empty host is the
// wildcard, a name is resolved.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("cluster: address %q: bad port", addr)
	}
	switch {
	case host == "":
		host = "0.0.0.0"
	case net.ParseIP(host) == nil:
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return "", 0, fmt.Errorf("cluster: address %q: %v", addr, err)
		}
		host = ips[0].String()
	}
	return host, port, nil
}

// logWriter turns memberlist's "[LEVEL] memberlist: text" lines into zap
// entries at that level; its chatter (DEBUG) stays at debug.
// A line saying this node's probe of a member failed marks it suspect:
// memberlist has no other way to tell.
//
// memberlist's Shutdown does not wait for its goroutines: a probe under
// way may still log. Once muted, lines are dropped, so that nothing is
// logged after Close returns.
type logWriter struct {
	log     *zap.Logger
	suspect func(name string)
	muted   atomic.Bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.muted.Load() {
		return len(p), nil
	}
	line := bytes.TrimSpace(p)
	lvl := "DEBUG"
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			lvl = string(line[1:end])
			line = bytes.TrimSpace(line[end+1:])
		}
	}
	msg := string(bytes.TrimPrefix(line, []byte("memberlist: ")))
	if name, ok := strings.CutPrefix(msg, "Suspect "); ok {
		if name, ok = strings.CutSuffix(name, " has failed, no acks received"); ok && w.suspect != nil {
			w.suspect(name)
		}
	}
	switch lvl {
	case "ERR", "ERROR":
		w.log.Error(msg)
	case "WARN":
		w.log.Warn(msg)
	case "INFO":
		w.log.Info(msg)
	default:
		w.log.Debug(msg)
	}
	return len(p), nil
}
