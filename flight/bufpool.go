// Buffer pools that do not clear what they hand out, for buffers that are
// written whole before they are read.
package flight

import (
	"math/bits"
	"sync"
)

// tieredPool keeps buffers in tiers of powers of two, from 256 bytes to
// 64 MiB; a larger buffer is allocated and dropped. Unlike gRPC's own
// pools it does not clear a buffer before handing it out: it serves gRPC's
// reads (each DATA frame is read whole into its buffer) and FlightData
// bodies (written whole before they are sent), whose stale bytes are
// overwritten before anything reads them. Clearing was about a sixth of
// the node's CPU on the identity path.
type tieredPool struct {
	tiers [maxTier - minTier + 1]sync.Pool
}

const (
	minTier = 8  // 256 bytes
	maxTier = 26 // 64 MiB
)

// tierOf is the tier of a buffer of capacity n: the least power of two at
// least n, and whether it is one the pool keeps.
func tierOf(n int) (int, bool) {
	t := max(bits.Len(uint(max(n, 1)-1)), minTier)
	return t, t <= maxTier
}

// Get returns a buffer of length n; its bytes are whatever was there.
func (p *tieredPool) Get(n int) *[]byte {
	t, ok := tierOf(n)
	if !ok {
		b := make([]byte, n)
		return &b
	}
	if b, _ := p.tiers[t-minTier].Get().(*[]byte); b != nil {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<t)
	return &b
}

// Put takes back a buffer Get returned (or a prefix of one).
func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	if t, ok := tierOf(c); ok && c == 1<<t {
		p.tiers[t-minTier].Put(b)
	}
}
