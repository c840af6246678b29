// Load: the small record each node gossips about itself, and its
// encoding within memberlist's metadata bound.
package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxMetaBytes is memberlist's bound on a node's metadata (MetaMaxSize):
// an encoded Load never exceeds it.
const MaxMetaBytes = 512

// Load is what a node tells its peers about itself. It travels as
// memberlist node metadata, encoded as JSON with short keys; Warm is cut
// short where the whole would not fit in MaxMetaBytes.
type Load struct {
	// Flight is the TCP address at which peers reach the node's Flight
	// service ("" when it serves no TCP).
	Flight string `json:"f,omitempty"`
	// Owner is the owner tag that the ids of its objects carry
	// (objectstore.NewOwnedID): whom to pull them from.
	Owner string `json:"o,omitempty"`
	// Version is the node's build version.
	Version string `json:"v,omitempty"`
	// WorkersBusy of Workers Python worker processes run a task now.
	WorkersBusy int `json:"wb,omitempty"`
	Workers     int `json:"w,omitempty"`
	// ExecutorsBusy of Executors native executors run a task now.
	ExecutorsBusy int `json:"eb,omitempty"`
	Executors     int `json:"e,omitempty"`
	// Queued is the number of tasks waiting for a worker, QueuedNative for
	// an executor.
	Queued       int `json:"q,omitempty"`
	QueuedNative int `json:"qn,omitempty"`
	// Held is the tasks its calls hold for want of room: it takes room
	// reports.
	Held int `json:"hd,omitempty"`
	// StoreBytes of StoreLimit bytes of the object store's memory are used.
	StoreBytes int64 `json:"sb,omitempty"`
	StoreLimit int64 `json:"sl,omitempty"`
	// Warm are the functions loaded on the node, each as WarmHash(name).
	Warm []string `json:"h,omitempty"`
	// SpilledIn counts tasks that peers sent this node, SpilledOut tasks
	// this node sent to peers, since it started.
	SpilledIn  int64 `json:"si,omitempty"`
	SpilledOut int64 `json:"so,omitempty"`
}

// wire is the metadata record: the Load, and whether the node is leaving
// (Leave announces it first, since memberlist's leave reads like a death
// to the members it reaches by gossip).
type wire struct {
	Load
	Leaving bool `json:"x,omitempty"`
}

// WarmHash is the short name of a function in Load.Warm: the first 8 hex
// digits of the SHA-256 of its name.
func WarmHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:4])
}

// errLoadTooLarge: a Load without warm functions still exceeds the bound
// (an absurdly long address or version).
var errLoadTooLarge = errors.New("cluster: load record exceeds the metadata bound")

// encodeLoad encodes l (and leaving) in at most MaxMetaBytes, dropping
// warm functions from the end until it fits.
func encodeLoad(l Load, leaving bool) ([]byte, error) {
	w := wire{Load: l, Leaving: leaving}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(b) <= MaxMetaBytes {
		return b, nil
	}
	// Each warm entry costs its length plus quotes and a comma: drop
	// enough at once, then check.
	warm := l.Warm
	for over := len(b) - MaxMetaBytes; over > 0 && len(warm) > 0; warm = warm[:len(warm)-1] {
		over -= len(warm[len(warm)-1]) + 3
	}
	for {
		w.Warm = warm
		if b, err = json.Marshal(w); err != nil {
			return nil, err
		}
		if len(b) <= MaxMetaBytes {
			return b, nil
		}
		if len(warm) == 0 {
			return nil, fmt.Errorf("%w: %d bytes", errLoadTooLarge, len(b))
		}
		warm = warm[:len(warm)-1]
	}
}

// decodeLoad decodes a member's metadata; a record that does not parse (a
// node of another kind) reads as an empty Load.
func decodeLoad(b []byte) (Load, bool) {
	var w wire
	if len(b) > 0 && json.Unmarshal(b, &w) != nil {
		return Load{}, false
	}
	return w.Load, w.Leaving
}
