// The peer client's half of object pulls: read an object from its owner
// into this node's store as a copy, and check that the owner still holds
// it.
package flight

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/quiver-udf/quiver/objectstore"
)

// StatObject asks the owner at addr whether it still holds id published
// (object_stat); a released object fails with NOT_FOUND.
func (p *PeerClient) StatObject(ctx context.Context, addr string, id objectstore.ID) (ObjectStat, error) {
	var st ObjectStat
	body, err := p.action(ctx, addr, ActionObjectStat, []byte(id))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("flight: peer %s: object_stat: %w", addr, err)
	}
	return st, nil
}

// PullObject reads the object id from its owner at addr (DoGet marked
// quiver-pull) and stores it in store as a copy (objectstore.PutCopy),
// within the store's memory bound. The handle holds one reference.
// Errors from the owner come as they are (gRPC status errors).
func (p *PeerClient) PullObject(ctx context.Context, addr string, id objectstore.ID, store *objectstore.Store) (*objectstore.Handle, error) {
	c, err := p.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(p.outgoing(ctx, HeaderPull, "1"))
	defer cancel()
	stream, err := c.client.DoGet(ctx, &flight.Ticket{Ticket: []byte(id)})
	if err != nil {
		return nil, err
	}
	rdr, err := flight.NewRecordReader(stream, ipc.WithAllocator(p.cfg.Mem))
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	md, err := stream.Header()
	if err != nil {
		return nil, err
	}
	kind, size := lastHeader(md, HeaderObjectKind), lastHeader(md, HeaderObjectBytes)
	switch kind {
	case pullBatches:
		obj := store.Collect(rdr.Schema())
		defer obj.Release()
		for rdr.Next() {
			if err := obj.Add(rdr.RecordBatch()); err != nil {
				return nil, err
			}
		}
		if err := rdr.Err(); err != nil {
			return nil, err
		}
		return obj.PutCopy(ctx, id)
	case pullBlob:
		n, _ := strconv.ParseInt(size, 10, 64)
		if n > store.Limit() {
			return nil, fmt.Errorf("%w: object %s holds %d bytes, the store %d", objectstore.ErrOverCapacity, id, n, store.Limit())
		}
		blob, err := readBlob(rdr, n, store.Limit())
		if err != nil {
			return nil, err
		}
		return store.PutCopy(ctx, id, objectstore.Blob(blob))
	}
	return nil, fmt.Errorf("flight: peer %s: a pull of %s answered %s %q: want %q or %q", addr, id, HeaderObjectKind, kind, pullBatches, pullBlob)
}

// readBlob joins the rows of a pulled blob, expecting about n bytes and
// refusing more than limit.
func readBlob(rdr *flight.Reader, n, limit int64) ([]byte, error) {
	if !rdr.Schema().Equal(blobSchema) {
		return nil, fmt.Errorf("flight: a pulled blob has schema %s, want %s", rdr.Schema(), blobSchema)
	}
	blob := make([]byte, 0, max(n, 0))
	for rdr.Next() {
		col := rdr.RecordBatch().Column(0).(*array.LargeBinary)
		for i := 0; i < col.Len(); i++ {
			v := col.Value(i)
			if int64(len(blob)+len(v)) > limit {
				return nil, fmt.Errorf("%w: a pulled blob outgrows the store's %d bytes", objectstore.ErrOverCapacity, limit)
			}
			blob = append(blob, v...)
		}
	}
	return blob, rdr.Err()
}
