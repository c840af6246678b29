// Session ops: what a session request does (a call of a task function,
// a put, a get), whichever transport carried it.
package flight

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// call runs req.Fn over the request's rows, one result row per row.
func (ss *session) call(ctx context.Context, req sessionRequest, rec arrow.RecordBatch) {
	opts := scheduler.CallOptions{RowsPerTask: req.RowsPerTask, Retries: scheduler.DefaultRetries, Independent: req.Jobs}
	if req.Retries != nil {
		opts.Retries = *req.Retries
	}
	if opts.RowsPerTask < 0 || opts.RowsPerTask > maxRowsPerTask || opts.Retries < 0 || opts.Retries > maxRetries {
		ss.answer(req.Req, sessionReply{}, udf.Invalidf("rows_per_task must be in [1, %d] and retries in [0, %d]", maxRowsPerTask, maxRetries))
		return
	}
	fn, err := ss.s.cat.Lookup(req.Fn)
	if err != nil {
		ss.answer(req.Req, sessionReply{}, err)
		return
	}
	b, err := scheduler.Bind(fn, ss.in, opts)
	if err == nil && b.Table {
		err = udf.Invalidf("%s is a table function: call it with DoExchange", req.Fn)
	}
	if err == nil && !arrow.TypeEqual(b.OutType, arrow.BinaryTypes.LargeBinary) {
		err = udf.Invalidf("%s returns %s: a session calls only functions returning large_binary (register with kind \"task\")", req.Fn, b.OutType)
	}
	if err != nil {
		ss.answer(req.Req, sessionReply{}, err)
		return
	}
	rec.Retain() // Run releases the batch its source yields
	answered := false
	err = ss.s.sched.Run(ctx, b, &oneBatch{rec: rec}, func(out arrow.RecordBatch, info scheduler.BatchInfo) error {
		res := array.NewRecordBatch(sessionOutSchema, out.Columns()[:1], out.NumRows())
		defer res.Release()
		answered = true
		return ss.send(res, sessionReply{Req: req.Req, WorkMs: &info.WorkMs})
	})
	if !answered {
		ss.answer(req.Req, sessionReply{}, err)
	}
}

// put stores the request's rows, concatenated, as a blob under req.ID.
func (ss *session) put(ctx context.Context, req sessionRequest, rec arrow.RecordBatch) (sessionReply, error) {
	if ss.s.cfg.Objects == nil {
		return sessionReply{}, errNoObjectStore
	}
	col := rec.Column(0).(*array.LargeBinary)
	if req.IDs != nil {
		return ss.putMany(ctx, req.IDs, col)
	}
	var parts [][]byte
	for i := 0; i < col.Len(); i++ {
		parts = append(parts, col.Value(i))
	}
	id, size, err := ss.store(ctx, req.ID, parts...)
	return sessionReply{ID: id, Bytes: size}, err
}

// putMany stores row i as object ids[i]; the answer lists the objects that
// failed, each with its own error.
func (ss *session) putMany(ctx context.Context, ids []string, col *array.LargeBinary) (sessionReply, error) {
	if len(ids) != col.Len() {
		return sessionReply{}, udf.Invalidf("a put of %d ids has %d rows: one row per object", len(ids), col.Len())
	}
	var reply sessionReply
	for i, id := range ids {
		_, size, err := ss.store(ctx, id, col.Value(i))
		if err != nil {
			if id == "" {
				return sessionReply{}, udf.Invalidf("a put of several objects names each one: id %d is empty", i)
			}
			reply.Failed = append(reply.Failed, sessionFailure{ID: id, sessionError: errorOf(err)})
			continue
		}
		reply.Bytes += size
	}
	return reply, nil
}

// store keeps the concatenation of parts as a blob under id (a new id when
// empty), held until released like DoPut's objects; it returns the id and
// what the object counts against the store.
func (ss *session) store(ctx context.Context, id string, parts ...[]byte) (string, int64, error) {
	oid, size, err := ss.s.cfg.Objects.PublishBlob(ctx, objectstore.ID(id), parts...)
	return string(oid), size, err
}

// acquire takes a reference to the object a get names. Only an object
// whose put has not been released is found, even while an earlier reader
// still holds a released one.
func (ss *session) acquire(req sessionRequest) (*objectstore.Handle, objectstore.Stamp, error) {
	if ss.s.cfg.Objects == nil {
		return nil, objectstore.Stamp{}, errNoObjectStore
	}
	return ss.s.cfg.Objects.AcquireStamped(objectstore.ID(req.ID))
}

// get answers a blob object as one row (a stream object of one
// large_binary column and one batch: that batch's rows), with its stamp
// when the session is a lane's and the object has one.
func (ss *session) get(ctx context.Context, req sessionRequest, h *objectstore.Handle, st objectstore.Stamp) {
	if h.Size() > int64(ss.s.cfg.MaxMessageBytes)/2 {
		ss.answer(req.Req, sessionReply{}, fmt.Errorf("%w: object %s holds %d bytes; read it with DoGet", errTooLargeForSession, req.ID, h.Size()))
		return
	}
	obj, err := h.Pin(ctx)
	if err != nil {
		ss.answer(req.Req, sessionReply{}, err)
		return
	}
	defer h.Unpin()
	var data arrow.RecordBatch
	switch {
	case obj.IsBlob():
		data = blobBatch(obj.Blob)
	case len(obj.Batches) == 1 && obj.Schema.NumFields() == 1 && arrow.TypeEqual(obj.Schema.Field(0).Type, arrow.BinaryTypes.LargeBinary):
		data = obj.Batches[0]
		data.Retain()
	default:
		ss.answer(req.Req, sessionReply{}, fmt.Errorf("%w: object %s is Arrow data, not a blob; read it with DoGet", errTooLargeForSession, req.ID))
		return
	}
	defer data.Release()
	res := array.NewRecordBatch(sessionOutSchema, data.Columns(), data.NumRows())
	defer res.Release()
	reply := sessionReply{Req: req.Req, ID: req.ID, Bytes: h.Size()}
	if ss.onLane() && st.OK {
		reply.Slot, reply.Gen = &st.Slot, st.Gen
	}
	ss.send(res, reply)
}

// oneBatch is a scheduler.Source of a single batch.
type oneBatch struct{ rec arrow.RecordBatch }

func (o *oneBatch) Next() (arrow.RecordBatch, error) {
	if o.rec == nil {
		return nil, io.EOF
	}
	rec := o.rec
	o.rec = nil
	return rec, nil
}

func (o *oneBatch) Close() {
	if o.rec != nil {
		o.rec.Release()
		o.rec = nil
	}
}

// emptyResult is a zero-row batch of sessionOutSchema.
func emptyResult() arrow.RecordBatch {
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.LargeBinary)
	defer b.Release()
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(sessionOutSchema, []arrow.Array{col}, 0)
}
