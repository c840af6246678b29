// Objects over Flight: DoPut stores a stream, DoGet reads it, and the
// object_release action drops the reference DoPut took.
package flight

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/objectstore"
)

// ObjectsPath is DoPut's descriptor: PATH [ObjectsPath].
const ObjectsPath = "objects"

// ActionObjectRelease drops the reference a DoPut holds; its body is the
// object id. The object is freed once no reader holds it either.
const ActionObjectRelease = "object_release"

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

// objectRefs holds the reference each DoPut took, by id, until
// object_release drops it. The zero value is ready.
type objectRefs struct {
	mu  sync.Mutex
	m   map[objectstore.ID]*objectstore.Handle
	shm shmFiles // objects held as files in shared memory (shm.go)
}

func (o *objectRefs) add(h *objectstore.Handle) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[objectstore.ID]*objectstore.Handle)
	}
	o.m[h.ID()] = h
}

// has reports whether id's reference is held.
func (o *objectRefs) has(id objectstore.ID) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.m[id]
	return ok
}

// take removes and returns id's reference, or nil.
func (o *objectRefs) take(id objectstore.ID) *objectstore.Handle {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.m[id]
	delete(o.m, id)
	return h
}

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
	rdr, err := openPutReader(stream, s, store.Limit())
	if err != nil {
		return err
	}
	defer rdr.Release()
	if err := objectsDescriptor(rdr.LatestFlightDescriptor()); err != nil {
		return err
	}
	recs, err := readObject(rdr, store.Limit())
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	if err != nil {
		return err
	}
	obj := objectstore.Batches(rdr.Schema(), recs)
	h, err := store.Put(stream.Context(), obj)
	if err != nil {
		return err
	}
	return s.publish(h, obj.Rows(), func(body []byte) error {
		return stream.Send(&flight.PutResult{AppMetadata: body})
	})
}

// publish holds h's reference until object_release and answers the put
// with send(JSON PutResult). If the answer cannot be sent, the reference is
// dropped: the client never learnt the id.
func (s *Server) publish(h *objectstore.Handle, rows int64, send func([]byte) error) error {
	body, err := json.Marshal(PutResult{ID: string(h.ID()), Rows: rows, Bytes: h.Size()})
	if err != nil {
		h.Release()
		return err
	}
	// Held before the answer, so that a release right after it finds it.
	s.objects.add(h)
	if err := send(body); err != nil {
		if h := s.objects.take(h.ID()); h != nil {
			h.Release()
		}
		return err
	}
	return nil
}

// openPutReader reads a DoPut stream up to its schema. Its allocator holds
// at most the store's memory and one more message.
func openPutReader(stream flight.FlightService_DoPutServer, s *Server, limit int64) (rdr *flight.Reader, err error) {
	defer func() {
		if r := recover(); r != nil {
			rdr, err = nil, fmt.Errorf("%w: reading the schema: %v", errMalformed, r)
		}
	}()
	in := &checkedStream{DataStreamReader: stream, maxBody: s.cfg.MaxMessageBytes}
	mem := newBudgetAllocator(s.cfg.Mem, limit+int64(s.cfg.MaxMessageBytes))
	rdr, err = flight.NewRecordReader(in, ipc.WithAllocator(mem))
	switch {
	case err == nil:
		return rdr, nil
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: the stream ended before a schema; send the descriptor PATH [%q] and the schema", errMalformed, ObjectsPath)
	case isStreamEnd(err):
		return nil, err
	}
	return nil, fmt.Errorf("%w: reading the schema: %v", errMalformed, err)
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

// readObject reads every batch, validated and retained, and fails with
// ErrOverCapacity as soon as they outgrow the store. The caller releases
// the batches returned, even with an error.
func readObject(rdr *flight.Reader, limit int64) (recs []arrow.RecordBatch, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: batch %d: %v", errMalformed, len(recs), r)
		}
	}()
	var size int64
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if err := validateBatch(rec); err != nil {
			return recs, fmt.Errorf("%w: batch %d: %v", errMalformed, len(recs), err)
		}
		rec.Retain()
		recs = append(recs, rec)
		if size += objectstore.Batches(rec.Schema(), []arrow.RecordBatch{rec}).Size(); size > limit {
			return recs, fmt.Errorf("%w: the object passes %d bytes at batch %d, more than the store's memory (%d bytes)",
				objectstore.ErrOverCapacity, size, len(recs)-1, limit)
		}
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		if isStreamEnd(err) {
			return recs, err
		}
		return recs, fmt.Errorf("%w: batch %d: %v", errMalformed, len(recs), err)
	}
	return recs, nil
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
	h, err := store.Acquire(objectstore.ID(tkt.GetTicket()))
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
	h := s.objects.take(objectstore.ID(body))
	if h == nil {
		return fmt.Errorf("%w: %q: no object, or its DoPut reference was released already", objectstore.ErrNotFound, body)
	}
	h.Release()
	return nil
}
