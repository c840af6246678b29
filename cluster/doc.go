// Package cluster is a node's membership: which Quiver nodes form the
// cluster, how loaded each is, and which have died or left. Gossip and
// failure detection are github.com/hashicorp/memberlist's (SWIM with
// Lifeguard); this package configures it and adds what Quiver needs.
//
// # Use
//
//	c, err := cluster.New(cluster.Config{
//		Bind:    "0.0.0.0:8817",        // TCP and UDP; port 0 picks one
//		Join:    []string{"first:8817"}, // any member; retried in the background
//		Token:   token,                  // required beyond loopback
//		Load:    func() cluster.Load { ... },
//		OnEvent: func(e cluster.Event) { ... },
//	}, log)
//	defer c.Leave(time.Second) // or Close, which others see as a death
//	for _, m := range c.Members() { ... } // self included, by name
//
// New returns once the gossip address is bound; joining is retried with
// backoff (100 ms doubling to 5 s) for JoinTimeout, logging each failure,
// while the node serves. WaitJoin reports how it ended.
//
// # Load
//
// Every LoadInterval (100 ms) the Cluster calls Config.Load and, when the
// record changed, gossips it as memberlist node metadata. The record is
// JSON with short keys and never exceeds memberlist's 512-byte bound:
// the list of warm functions (WarmHash: 8 hex digits each) is cut short
// to fit. A peer's view is therefore up to about 100 ms plus a few gossip
// rounds (50 ms each) old.
//
// # Events and states
//
// Members lists alive, suspect, dead and left members; dead and left ones
// stay listed for Config.Forget (10 minutes). OnEvent receives Joined,
// Updated, Left and Dead in order, from one goroutine. memberlist reports
// a leave to most members as a death, so Leave first gossips a "leaving"
// mark in the metadata; a member whose last record carried it is Left.
// Suspect is this node's own suspicion: memberlist reports no suspect
// event, so a member becomes suspect when this node's probe of it fails
// and alive again when it answers one.
//
// # Failure detection
//
// memberlist's DefaultLANConfig (probe every 1 s, probe timeout 500 ms,
// suspicion multiplier 4) needs several seconds to declare a node that
// was killed dead (bench/RESULTS.md, "Cluster: failure detection"). A
// Quiver cluster lives on one LAN, and a dead peer's tasks are re-run
// elsewhere, so every second counts. The tuned values:
//
//   - ProbeInterval 200 ms: each member probes one other every 200 ms.
//   - ProbeTimeout 100 ms: an ack on a LAN comes back in well under a
//     millisecond; 100 ms leaves room for a busy process's GC pause.
//   - SuspicionMult 2: the suspicion timeout is 2 × max(1, log10 n) ×
//     ProbeInterval (400 ms up to 10 nodes, 800 ms at 100), and with
//     Lifeguard's confirmations k = mult − 2 = 0 it is not stretched
//     while waiting for other members to confirm.
//   - GossipInterval 50 ms: suspicions, deaths and load records spread in
//     a few rounds.
//   - PushPullInterval and GossipToTheDeadTime 15 s, TCPTimeout 3 s.
//
// Measured on loopback, a member stopped without a word is declared dead
// in about 0.75 s by the tuned detector (see bench/RESULTS.md). The cost
// is traffic: 5 probes and 20 gossip rounds a second per node, each a
// small UDP packet, negligible on a LAN. The price of a false positive
// (a peer that paused longer than ~0.5 s, say a long GC) is that its
// tasks run twice; the origin accepts one result per task.
//
// # Security
//
// With a Token, gossip is encrypted and authenticated (AES-256-GCM, with
// GossipVerifyIncoming and GossipVerifyOutgoing) under a key derived as
// SHA-256("quiver-gossip-v1\x00" + token): a node with another token
// cannot join, nor read or forge gossip. Without a token, gossip is clear
// text and New refuses any Bind that is not loopback, as internal/node
// refuses a TCP listener beyond loopback.
//
// # Concurrency
//
// A Cluster's methods are safe for concurrent use. Close (or Leave) stops
// gossip and waits for the Cluster's own goroutines; memberlist's own may
// finish a probe under way, silently.
package cluster
