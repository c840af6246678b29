// Copies: objects another node owns, pulled here and counted.
package objectstore

import (
	"context"
	"sync/atomic"
)

// copyCounts count the copies stored (Stats.PullsTotal,
// Stats.PulledBytesTotal).
type copyCounts struct {
	pulls, bytes atomic.Int64
}

// PutCopy stores obj, a copy of the object id that another node owns
// (id.Owner() names it), as PutWithID does, and counts it as a pull. The
// copy is an object like any other: it counts against the memory bound,
// spills, and is freed with its last reference; it is not published, so
// AcquirePublished does not find it and no client releases it here. Who
// pulled it decides how long it is kept (flight's puller caches it).
func (s *Store) PutCopy(ctx context.Context, id ID, obj Object) (*Handle, error) {
	h, err := s.PutWithID(ctx, id, obj)
	if err != nil {
		return nil, err
	}
	s.cp.pulls.Add(1)
	s.cp.bytes.Add(h.Size())
	return h, nil
}
