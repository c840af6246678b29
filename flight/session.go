// Sessions: one long-lived DoExchange carrying many small requests (tasks,
// small objects), answered out of order, so that a client pays for a
// stream once instead of once per task.
package flight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// SessionCommand is the descriptor of a session: CMD "session".
const SessionCommand = "session"

// sessionWindow is how many calls and gets one session runs at once; past
// it the node stops reading the stream and gRPC flow control holds the
// client back.
const sessionWindow = 16

// Session ops, the "op" of a request's app_metadata.
const (
	opCall    = "call"
	opPut     = "put"
	opGet     = "get"
	opRelease = "release"
)

var (
	// errSessionSchema: a session's input is not one large_binary column.
	errSessionSchema = errors.New("a session's input schema is one large_binary column")
	// errTooLargeForSession: a get whose answer would not fit one message.
	errTooLargeForSession = errors.New("too large for a session answer")
)

// sessionOutSchema is the schema of every answer.
var sessionOutSchema = arrow.NewSchema([]arrow.Field{{Name: "result", Type: arrow.BinaryTypes.LargeBinary, Nullable: true}}, nil)

// sessionRequest is a request's app_metadata (docs/protocol.md, "Sessions").
type sessionRequest struct {
	Op          string   `json:"op"`
	Req         uint64   `json:"req"`
	Fn          string   `json:"fn,omitempty"`
	RowsPerTask int64    `json:"rows_per_task,omitempty"`
	Retries     *int     `json:"retries,omitempty"`
	Jobs        bool     `json:"jobs,omitempty"`
	ID          string   `json:"id,omitempty"`
	IDs         []string `json:"ids,omitempty"` // put: one object per row
}

// sessionReply is an answer's app_metadata.
type sessionReply struct {
	Req    uint64           `json:"req"`
	Error  *sessionError    `json:"error,omitempty"`
	WorkMs *float64         `json:"work_ms,omitempty"`
	ID     string           `json:"id,omitempty"`
	Bytes  int64            `json:"bytes,omitempty"`
	Failed []sessionFailure `json:"failed,omitempty"` // a put of several objects: those not stored
}

type sessionError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// sessionFailure is one object of a put of several that was not stored.
type sessionFailure struct {
	ID string `json:"id"`
	sessionError
}

// isSession reports whether d opens a session.
func isSession(d *flight.FlightDescriptor) bool {
	return d != nil && d.Type == flight.DescriptorCMD && string(d.Cmd) == SessionCommand
}

// session is the state of one session stream.
type session struct {
	s      *Server
	in     *arrow.Schema
	cancel context.CancelFunc
	empty  arrow.RecordBatch // zero rows of sessionOutSchema

	mu      sync.Mutex // serializes answers; guards what follows
	w       *eagerWriter
	werr    error
	stopped bool // no more requests are taken

	slots chan struct{} // sessionWindow
	wg    sync.WaitGroup
}

// serveSession answers requests until the client ends the stream, the
// node drains, or a request cannot be understood.
func (s *Server) serveSession(ctx context.Context, stream flight.FlightService_DoExchangeServer, rdr *flight.Reader) error {
	in := rdr.Schema()
	if in.NumFields() != 1 || !arrow.TypeEqual(in.Field(0).Type, arrow.BinaryTypes.LargeBinary) {
		rdr.Release()
		return fmt.Errorf("%w: %w, got %s", errMalformed, errSessionSchema, in)
	}
	w, err := newEagerWriter(stream, sessionOutSchema, s.cfg.Mem)
	if err != nil {
		rdr.Release()
		return err
	}
	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss := &session{s: s, in: in, cancel: cancel, w: w, slots: make(chan struct{}, sessionWindow)}
	ss.empty = emptyResult()
	defer ss.empty.Release()
	// The reading goroutine handles each request as it arrives. It may stay
	// blocked on the stream after this returns (the stream ends with it),
	// so it owns rdr and takes no request once stopped is set.
	read := make(chan error, 1)
	go func() { read <- ss.read(ctx, rdr) }()
	var end error
	select {
	case end = <-read:
	case <-s.drain:
		end = errDraining
	case <-ctx.Done():
		end = ctx.Err()
	}
	ss.mu.Lock()
	ss.stopped = true
	ss.mu.Unlock()
	ss.wg.Wait() // requests in flight are answered
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.werr != nil && end == nil {
		end = ss.werr
	}
	if err := w.Close(); err != nil && end == nil {
		end = err
	}
	return end
}

// read handles requests until the stream ends (nil at its end) or a
// request cannot be understood; it releases rdr.
func (ss *session) read(ctx context.Context, rdr *flight.Reader) error {
	defer rdr.Release()
	src := &source{rdr: rdr}
	for {
		rec, err := src.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ss.mu.Lock()
		if ss.stopped {
			ss.mu.Unlock()
			rec.Release()
			return nil
		}
		ss.wg.Add(1)
		ss.mu.Unlock()
		err = ss.handle(ctx, rec, rdr.LatestAppMetadata())
		ss.wg.Done()
		if err != nil {
			return err
		}
	}
}

// handle starts or answers one request. It returns an error only for a
// request that cannot be answered at all (no usable req number).
func (ss *session) handle(ctx context.Context, rec arrow.RecordBatch, meta []byte) error {
	req, err := parseSessionRequest(meta)
	if err != nil {
		rec.Release()
		return err
	}
	switch req.Op {
	case opPut:
		reply, err := ss.put(ctx, req, rec)
		rec.Release()
		ss.answer(req.Req, reply, err)
	case opRelease:
		rec.Release()
		ss.answer(req.Req, sessionReply{}, ss.s.releaseObject([]byte(req.ID)))
	case opCall, opGet:
		var h *objectstore.Handle
		pull := req.Op == opGet && ss.s.cfg.Objects != nil && ss.s.remoteObject(objectstore.ID(req.ID))
		if req.Op == opGet && !pull {
			// Held from now: a release read after this get does not pull
			// the object from under it. (An object pulled from its owner
			// is released there, not here: it is read in the goroutine,
			// without holding up the session.)
			if h, err = ss.acquire(req); err != nil {
				rec.Release()
				ss.answer(req.Req, sessionReply{}, err)
				return nil
			}
		}
		select {
		case ss.slots <- struct{}{}:
		case <-ctx.Done():
			rec.Release()
			if h != nil {
				h.Release()
			}
			return ctx.Err()
		}
		ss.wg.Add(1)
		go func() {
			defer func() { <-ss.slots; ss.wg.Done() }()
			defer rec.Release()
			if pull {
				var err error
				if h, err = ss.s.cfg.Pull.Acquire(ctx, objectstore.ID(req.ID)); err != nil {
					ss.answer(req.Req, sessionReply{}, err)
					return
				}
			}
			if h != nil {
				defer h.Release()
				ss.get(ctx, req, h)
			} else {
				ss.call(ctx, req, rec)
			}
		}()
	default:
		rec.Release()
		ss.answer(req.Req, sessionReply{}, udf.Invalidf("unknown session op %q: want %s, %s, %s or %s", req.Op, opCall, opPut, opGet, opRelease))
	}
	return nil
}

// parseSessionRequest reads a request's app_metadata. A field the node
// does not know is refused rather than ignored: a request that counts on
// it (a newer client's) must not be served as if it were absent.
func parseSessionRequest(meta []byte) (sessionRequest, error) {
	var req sessionRequest
	dec := json.NewDecoder(bytes.NewReader(meta))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	switch {
	case err == nil && dec.More():
		err = errors.New("more than one JSON value")
	case err == nil && req.Op == "":
		err = errors.New("no op")
	}
	if err != nil {
		return req, fmt.Errorf("%w: a session request's app_metadata must be JSON {\"op\": ..., \"req\": N, ...}, got %q (%v)", errMalformed, truncate(meta, 200), err)
	}
	return req, nil
}

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
func (ss *session) acquire(req sessionRequest) (*objectstore.Handle, error) {
	if ss.s.cfg.Objects == nil {
		return nil, errNoObjectStore
	}
	return ss.s.cfg.Objects.AcquirePublished(objectstore.ID(req.ID))
}

// get answers a blob object as one row (a stream object of one
// large_binary column and one batch: that batch's rows).
func (ss *session) get(ctx context.Context, req sessionRequest, h *objectstore.Handle) {
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
	ss.send(res, sessionReply{Req: req.Req, ID: req.ID, Bytes: h.Size()})
}

// answer sends reply for req (a zero-row batch), or err as its error.
func (ss *session) answer(req uint64, reply sessionReply, err error) {
	reply.Req = req
	if err != nil {
		e := errorOf(err)
		if e.Code == codes.Internal.String() {
			ss.s.log.Error("session request failed", zap.Error(err))
		}
		reply = sessionReply{Req: req, Error: &e}
	}
	ss.send(ss.empty, reply)
}

// errorOf is err as a session answer states it: its gRPC code's name and
// its message.
func errorOf(err error) sessionError {
	return sessionError{Code: codeOf(toStatus(err)).String(), Message: err.Error()}
}

// send writes one answer. A failed write ends the session.
func (ss *session) send(rec arrow.RecordBatch, reply sessionReply) error {
	meta, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.werr != nil {
		return ss.werr
	}
	ss.w.ps.fd.AppMetadata = meta
	err = ss.w.Write(rec)
	ss.w.ps.fd.AppMetadata = nil
	if err != nil {
		ss.werr = err
		ss.cancel()
	}
	return err
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

// truncate returns at most n bytes of b.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
