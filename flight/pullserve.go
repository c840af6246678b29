// The owner's half of object pulls: a peer's DoGet marked quiver-pull,
// answered in chunks of about PullChunkBytes, and object_stat, the check
// a peer makes before it serves its copy.
package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/objectstore"
)

// Headers of object pulls (docs/protocol.md, "Peer calls: object pulls").
const (
	// HeaderPull "1" on DoGet: a peer pulls an object this node owns. Only
	// an object still published (not released) is served, only from this
	// node's store (a pull never pulls in turn), in chunks.
	HeaderPull = "quiver-pull"
	// HeaderObjectKind, a response header of a pull: "batches" (the
	// stream is the object's batches, cut into row slices) or "blob" (one
	// large_binary column "blob" whose rows, in order, are the blob's
	// pieces).
	HeaderObjectKind = "quiver-object-kind"
	// HeaderObjectBytes, a response header of a pull: what the object
	// counts against the owner's store, a blob's length.
	HeaderObjectBytes = "quiver-object-bytes"
)

// Kinds of pulled objects (HeaderObjectKind).
const (
	pullBatches = "batches"
	pullBlob    = "blob"
)

// PullChunkBytes is about the most one message of a pull carries: batches
// larger than this go as row slices, a blob as pieces of this length (Ray's
// object manager sends 5 MiB chunks). A single row larger than it goes
// whole.
const PullChunkBytes = 5 << 20

// ActionObjectStat answers JSON ObjectStat for an object published here,
// NOT_FOUND otherwise; its body is the id. Peers ask it before they serve
// a copy.
const ActionObjectStat = "object_stat"

// ObjectStat is the body of object_stat's answer.
type ObjectStat struct {
	Bytes int64 `json:"bytes"` // what the object counts against the store
}

// isPull reports whether a DoGet is a peer's pull.
func isPull(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return lastHeader(md, HeaderPull) == "1"
}

// servePull answers a peer's pull of id: published objects only, from
// this store only, chunked.
func (s *Server) servePull(stream flight.FlightService_DoGetServer, id objectstore.ID) error {
	h, err := s.cfg.Objects.AcquirePublished(id)
	if err != nil {
		return err
	}
	defer h.Release()
	obj, err := h.Pin(stream.Context())
	if err != nil {
		return err
	}
	defer h.Unpin()
	kind := pullBatches
	if obj.IsBlob() {
		kind = pullBlob
	}
	if err := stream.SetHeader(metadata.Pairs(HeaderObjectKind, kind, HeaderObjectBytes, strconv.FormatInt(h.Size(), 10))); err != nil {
		return err
	}
	switch {
	case obj.IsBlob():
		return sendBlobChunks(stream, obj.Blob, s.cfg.Mem)
	case obj.IsStream():
		return sendStreamChunks(stream, obj.Stream, s.cfg.Mem)
	}
	return sendChunks(stream, obj.Schema, obj.Batches, s.cfg.Mem)
}

// sendChunks sends recs, each cut into row slices of about PullChunkBytes.
func sendChunks(stream flight.DataStreamWriter, schema *arrow.Schema, recs []arrow.RecordBatch, mem memory.Allocator) error {
	w, err := newEagerWriter(stream, schema, mem)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := writeChunked(w, rec); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// sendStreamChunks sends the batches of an IPC stream held as bytes (an
// object adopted from shared memory), cut as sendChunks cuts them.
func sendStreamChunks(stream flight.DataStreamWriter, b []byte, mem memory.Allocator) error {
	r, err := ipc.NewReader(bytes.NewReader(b), ipc.WithAllocator(mem))
	if err != nil {
		return err
	}
	defer r.Release()
	w, err := newEagerWriter(stream, r.Schema(), mem)
	if err != nil {
		return err
	}
	for r.Next() {
		if err := writeChunked(w, r.RecordBatch()); err != nil {
			w.Close()
			return err
		}
	}
	if err := r.Err(); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// writeChunked writes rec as row slices of about PullChunkBytes each.
func writeChunked(w *eagerWriter, rec arrow.RecordBatch) error {
	n := rec.NumRows()
	size := objectstore.Batches(rec.Schema(), []arrow.RecordBatch{rec}).Size()
	if size <= PullChunkBytes || n <= 1 {
		return w.Write(rec)
	}
	step := max(1, n*PullChunkBytes/size)
	for off := int64(0); off < n; off += step {
		part := rec.NewSlice(off, min(off+step, n))
		err := w.Write(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// sendBlobChunks sends b as rows of blobSchema, one piece of at most
// PullChunkBytes per batch (one empty row for an empty blob).
func sendBlobChunks(stream flight.DataStreamWriter, b []byte, mem memory.Allocator) error {
	w, err := newEagerWriter(stream, blobSchema, mem)
	if err != nil {
		return err
	}
	for off := 0; off == 0 || off < len(b); off += PullChunkBytes {
		rec := blobBatch(b[off:min(off+PullChunkBytes, len(b))])
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// objectStat serves object_stat: the size of an object published here.
func (s *Server) objectStat(body []byte) ([]byte, error) {
	if s.cfg.Objects == nil {
		return nil, errNoObjectStore
	}
	h, err := s.cfg.Objects.AcquirePublished(objectstore.ID(body))
	if err != nil {
		return nil, err
	}
	defer h.Release()
	return json.Marshal(ObjectStat{Bytes: h.Size()})
}
