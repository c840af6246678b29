// Objects over Flight: DoPut stores a stream, DoGet reads it, and the
// object_release action drops the reference DoPut took.
package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/internal/ipccheck"
	"github.com/quiver-udf/quiver/objectstore"
)

// ObjectsPath is DoPut's descriptor: PATH [ObjectsPath].
const ObjectsPath = "objects"

// ActionObjectRelease drops the reference a DoPut holds; its body is the
// object id. The object is freed once no reader holds it either.
const ActionObjectRelease = "object_release"

// putFirst is what a DoPut stream starts with.
const putFirst = `the descriptor PATH ["` + ObjectsPath + `"] and the schema`

// errNoObjectStore: DoPut, DoGet or object_release on a node built without
// an object store.
var errNoObjectStore = errors.New("this node serves no objects (no object store)")

// PutResult is the app_metadata of the one PutResult that answers DoPut.
type PutResult struct {
	ID    string `json:"id"`    // the new object's id: DoGet's ticket
	Rows  int64  `json:"rows"`  // rows over all batches
	Bytes int64  `json:"bytes"` // what the object counts against the store's memory
}

// blobSchema is how DoGet sends a blob object: one row, one column.
var blobSchema = arrow.NewSchema([]arrow.Field{{Name: "blob", Type: arrow.BinaryTypes.LargeBinary}}, nil)

// DoPut stores the stream it receives, under descriptor PATH ["objects"],
// as a new object, and answers one PutResult with JSON PutResult.
func (s *Server) DoPut(stream flight.FlightService_DoPutServer) (err error) {
	defer func() { err = s.finish("DoPut", err) }()
	if s.draining.Load() {
		return errDraining
	}
	store := s.cfg.Objects
	if store == nil {
		return errNoObjectStore
	}
	rdr, err := s.openInput(stream, store.Limit()+int64(s.cfg.MaxMessageBytes), putFirst)
	if err != nil {
		return err
	}
	defer rdr.Release()
	if err := objectsDescriptor(rdr.LatestFlightDescriptor()); err != nil {
		return err
	}
	obj := store.Collect(rdr.Schema())
	defer obj.Release()
	if err := readObject(rdr, &obj); err != nil {
		return err
	}
	h, err := obj.Put(stream.Context())
	if err != nil {
		return err
	}
	return s.publish(h, obj.Rows(), func(body []byte) error {
		return stream.Send(&flight.PutResult{AppMetadata: body})
	})
}

// publish has the store hold h's reference until object_release, and
// answers the put with send(JSON PutResult).
func (s *Server) publish(h *objectstore.Handle, rows int64, send func([]byte) error) error {
	return s.cfg.Objects.Publish(h, func() error {
		body, err := json.Marshal(PutResult{ID: string(h.ID()), Rows: rows, Bytes: h.Size()})
		if err != nil {
			return err
		}
		return send(body)
	})
}

// objectsDescriptor checks DoPut's descriptor.
func objectsDescriptor(d *flight.FlightDescriptor) error {
	if d == nil {
		return fmt.Errorf("%w: no flight descriptor: send PATH [%q] with the first message", errMalformed, ObjectsPath)
	}
	if d.Type != flight.DescriptorPATH || len(d.Path) != 1 || d.Path[0] != ObjectsPath {
		return fmt.Errorf("%w: DoPut descriptor must be PATH [%q], got type %s with path %q", errMalformed, ObjectsPath, d.Type, d.Path)
	}
	return nil
}

// readObject reads every batch, validated, into obj, which fails with
// ErrOverCapacity as soon as they outgrow the store.
func readObject(rdr *flight.Reader, obj *objectstore.Collector) (err error) {
	n := 0
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: batch %d: %v", errMalformed, n, r)
		}
	}()
	for ; rdr.Next(); n++ {
		rec := rdr.RecordBatch()
		if err := ipccheck.Batch(rec); err != nil {
			return fmt.Errorf("%w: batch %d: %v", errMalformed, n, err)
		}
		if err := obj.Add(rec); err != nil {
			return err
		}
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		if isStreamEnd(err) {
			return err
		}
		return fmt.Errorf("%w: batch %d: %v", errMalformed, n, err)
	}
	return nil
}

// DoGet streams the object the ticket names (its id): the schema, then its
// batches. A blob comes as one row of one large_binary column, blob.
func (s *Server) DoGet(tkt *flight.Ticket, stream flight.FlightService_DoGetServer) (err error) {
	defer func() { err = s.finish("DoGet", err) }()
	if s.draining.Load() {
		return errDraining
	}
	store := s.cfg.Objects
	if store == nil {
		return errNoObjectStore
	}
	id := objectstore.ID(tkt.GetTicket())
	if isPull(stream.Context()) {
		return s.servePull(stream, id)
	}
	h, err := s.acquireObject(stream.Context(), id, false)
	if err != nil {
		return err
	}
	defer h.Release()
	obj, err := h.Pin(stream.Context())
	if err != nil {
		return err
	}
	defer h.Unpin()
	if obj.IsStream() { // adopted from shared memory (shm.go), or read back from a spill
		return sendStream(stream, obj.Stream, s.cfg.MaxMessageBytes)
	}
	schema, recs := obj.Schema, obj.Batches
	if obj.IsBlob() {
		rec := blobBatch(obj.Blob)
		defer rec.Release()
		schema, recs = blobSchema, []arrow.RecordBatch{rec}
	}
	w, err := newEagerWriter(stream, schema, s.cfg.Mem)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			w.Close()
			return err
		}
	}
	return w.Close()
}

// acquireObject takes a reference to id for a reader: a copy pulled from
// its owner when id names another node and no client published it here
// (pull.go), else the object here (only a published one with published).
func (s *Server) acquireObject(ctx context.Context, id objectstore.ID, published bool) (*objectstore.Handle, error) {
	store := s.cfg.Objects
	if s.remoteObject(id) {
		return s.cfg.Pull.Acquire(ctx, id)
	}
	if published {
		return store.AcquirePublished(id)
	}
	return store.Acquire(id)
}

// remoteObject reports whether reading id pulls it from another node.
func (s *Server) remoteObject(id objectstore.ID) bool {
	return s.cfg.Pull != nil && s.cfg.Pull.Remote(id) && !s.cfg.Objects.Published(id)
}

// blobBatch wraps b, without a copy, as one row of blobSchema.
func blobBatch(b []byte) arrow.RecordBatch {
	offsets := memory.NewBufferBytes(arrow.Int64Traits.CastToBytes([]int64{0, int64(len(b))}))
	data := array.NewData(arrow.BinaryTypes.LargeBinary, 1, []*memory.Buffer{nil, offsets, memory.NewBufferBytes(b)}, nil, 0, 0)
	defer data.Release()
	col := array.MakeFromData(data)
	defer col.Release()
	return array.NewRecordBatch(blobSchema, []arrow.Array{col}, 1)
}

// releaseObject serves object_release: it drops the reference DoPut took.
func (s *Server) releaseObject(body []byte) error {
	if s.cfg.Objects == nil {
		return errNoObjectStore
	}
	return s.cfg.Objects.Unpublish(objectstore.ID(body))
}
