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
	"os"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/quiver-udf/quiver/objectstore"
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
	opLease   = "lease"
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
	Slot   *int             `json:"slot,omitempty"`   // a get over a lane: the object's stamp (docs/protocol.md, "Lane")
	Gen    uint64           `json:"gen,omitempty"`
	Lease  *bool            `json:"lease,omitempty"` // a lease: whether a worker was leased (its socket attached)
	IdleMs int64            `json:"idle_ms,omitempty"`
	MaxMs  int64            `json:"max_ms,omitempty"`
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

// session is the state of one session, over a Flight stream or a lane
// (lane.go).
type session struct {
	s      *Server
	in     *arrow.Schema
	cancel context.CancelFunc
	empty  arrow.RecordBatch // zero rows of sessionOutSchema
	// writeFile, set on a lane only, sends an answer with a descriptor
	// attached (a lease); nil over Flight.
	writeFile func(meta []byte, f *os.File) error

	mu      sync.Mutex // serializes answers; guards what follows
	write   func(rec arrow.RecordBatch, meta []byte) error
	werr    error
	stopped bool // no more requests are taken

	slots chan struct{} // sessionWindow
	wg    sync.WaitGroup
}

// onLane reports whether the session runs over the lane (lane.go): its
// gets carry stamps (lane clients map the generation table) and it may
// lease workers.
func (ss *session) onLane() bool { return ss.writeFile != nil }

// newSession is a session whose answers go to write (called one at a time).
func (s *Server) newSession(in *arrow.Schema, write func(arrow.RecordBatch, []byte) error) *session {
	return &session{s: s, in: in, write: write, empty: emptyResult(), slots: make(chan struct{}, sessionWindow)}
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
	ss := s.newSession(in, func(rec arrow.RecordBatch, meta []byte) error {
		w.ps.fd.AppMetadata = meta
		defer func() { w.ps.fd.AppMetadata = nil }()
		return w.Write(rec)
	})
	src := &source{rdr: rdr}
	end := ss.serve(ctx, func() (arrow.RecordBatch, []byte, error) {
		rec, err := src.Next()
		if err != nil {
			return nil, nil, err
		}
		return rec, rdr.LatestAppMetadata(), nil
	}, rdr.Release)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if err := w.Close(); err != nil && end == nil {
		end = err
	}
	return end
}

// serve handles the requests next reads until it ends (io.EOF: the
// client's end), the node drains, ctx ends, or a request cannot be
// understood; then it waits for the requests in flight to be answered.
// The reading goroutine may stay blocked in next after serve returns (the
// transport's end unblocks it), so it owns the reader: done runs when it
// stops.
func (ss *session) serve(ctx context.Context, next func() (arrow.RecordBatch, []byte, error), done func()) error {
	s := ss.s
	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	ctx, ss.cancel = context.WithCancel(ctx)
	defer ss.cancel()
	defer ss.empty.Release()
	read := make(chan error, 1)
	go func() { read <- ss.read(ctx, next, done) }()
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
	return end
}

// read handles requests until next ends (nil at io.EOF) or a request
// cannot be understood.
func (ss *session) read(ctx context.Context, next func() (arrow.RecordBatch, []byte, error), done func()) error {
	defer done()
	for {
		rec, meta, err := next()
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
		err = ss.handle(ctx, rec, meta)
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
	case opLease:
		rec.Release()
		ss.lease(req)
	case opCall, opGet:
		var h *objectstore.Handle
		var st objectstore.Stamp
		pull := req.Op == opGet && ss.s.cfg.Objects != nil && ss.s.remoteObject(objectstore.ID(req.ID))
		if req.Op == opGet && !pull {
			// Held from now: a release read after this get does not pull
			// the object from under it. (An object pulled from its owner
			// is released there, not here: it is read in the goroutine,
			// without holding up the session.)
			if h, st, err = ss.acquire(req); err != nil {
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
				ss.get(ctx, req, h, st)
			} else {
				ss.call(ctx, req, rec)
			}
		}()
	default:
		rec.Release()
		ss.answer(req.Req, sessionReply{}, udf.Invalidf("unknown session op %q: want %s, %s, %s, %s or %s", req.Op, opCall, opPut, opGet, opRelease, opLease))
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
	if err = ss.write(rec, meta); err != nil {
		ss.werr = err
		ss.cancel()
	}
	return err
}

// truncate returns at most n bytes of b.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
