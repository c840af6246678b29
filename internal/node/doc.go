// Package node wires one Quiver node from a Config and runs it until its
// context ends, then drains.
//
// Run builds the parts in the order the layers depend on each other, each
// from its own Config, and closes them in reverse with plain defers:
//
//  1. what can fail on the machine's state: TLS files, the recorder's
//     directory, the object store (its spill directory and, unless ShmDir
//     is "none", its shared-memory directory);
//  2. the listeners (TCP, then the user-only unix socket). They are bound
//     after everything above, so a node that cannot start never holds a
//     port or a socket; only a bad configuration can fail past this point;
//  3. the Python worker pool (its workers reach their own node through the
//     socket, or the bound TCP address when there is no socket), the
//     scheduler (native executors and one lane slot per Python worker,
//     counted apart) and the Flight server over all of them;
//  4. with Gossip set, the node's membership (package cluster, in
//     cluster.go here): it gossips this node's load, joins Join in the
//     background, and feeds cluster_status its peers. A default gossip
//     port that is taken falls back to a free one (GossipFallback). On
//     cancellation the node leaves the cluster before it drains.
//
// Peers: every node has a flight.PeerClient, through which it fetches the
// Python functions of tasks peers spill to it. With Gossip set it also
// spills: clusterPeers (peers.go, a PeerSource) reads the members' load
// records, remote (remote.go) turns them into scheduler.Remote and cuts
// off tasks in flight to a member declared dead, and scheduler.Hybrid
// places the tasks.
//
// Then it serves, calls Ready with the bound addresses, and on
// cancellation drains calls in flight for at most DrainTimeout.
//
// Safe defaults live in Config.validate: a TCP address that is not
// loopback is refused without a token, and so is a gossip address.
package node
