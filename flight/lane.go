// Lane: the task API's transport for clients on the node's host. A session
// (session.go) over a plain unix socket with the worker protocol's framing
// instead of gRPC, plus the object store's generation table, so that a
// client keeps small objects it read and knows without asking that they
// are still published (docs/protocol.md, "Lane").
package flight

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// ActionLane answers JSON LaneInfo: where this node's lane is.
const ActionLane = "lane"

// errNotOnLane: a lease asked for over a Flight session.
var errNotOnLane = errors.New("not on the lane")

// laneHelloTimeout bounds how long a new lane connection may take to say
// hello.
const laneHelloTimeout = 5 * time.Second

// LaneInfo is the body of the lane action. Path is "" when the node
// serves no lane or the caller is not on the node's unix socket (a caller
// over TCP may be on another host; and only a caller that may use the
// node learns the key).
type LaneInfo struct {
	Path string `json:"path"`
	Key  string `json:"key,omitempty"`
}

// laneState is the lane the server serves, once ServeLane runs, and
// its connections being served.
type laneState struct {
	path string
	key  string

	mu      sync.Mutex
	conns   int
	stopped bool
	done    chan struct{} // closed once stopped with no connection left
}

// enter counts a new connection; false once the lane is stopped.
func (ln *laneState) enter() bool {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.stopped {
		return false
	}
	ln.conns++
	return true
}

// leave uncounts a connection.
func (ln *laneState) leave() {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.conns--
	if ln.stopped && ln.conns == 0 {
		close(ln.done)
	}
}

// stop takes no more connections; the channel closes when the last ends.
func (ln *laneState) stop() <-chan struct{} {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if !ln.stopped {
		ln.stopped = true
		if ln.conns == 0 {
			close(ln.done)
		}
	}
	return ln.done
}

// newLaneKey is a random key: a lane client must present the one the lane
// action gave it, so only callers the Flight server let in use the lane.
func newLaneKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeLane serves the lane on lis (a unix socket at path, user-only)
// until Shutdown; lane sessions then end like Flight ones.
func (s *Server) ServeLane(lis net.Listener, path string) error {
	ln := &laneState{path: path, key: newLaneKey(), done: make(chan struct{})}
	if !s.lane.CompareAndSwap(nil, ln) {
		lis.Close()
		return errors.New("flight: a lane is served already")
	}
	go func() {
		<-s.drain
		lis.Close()
	}()
	for {
		c, err := lis.Accept()
		if err != nil {
			select {
			case <-s.drain:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		if !ln.enter() {
			c.Close() // accepted as the node began to drain
			continue
		}
		go func() {
			defer ln.leave()
			defer c.Close()
			if err := s.serveLane(c, ln); err != nil && !errors.Is(err, errDraining) {
				s.log.Debug("lane connection ended", zap.Error(err))
			}
		}()
	}
}

// awaitLanes waits until the lane's connections have ended or ctx ends.
func (s *Server) awaitLanes(ctx context.Context) {
	ln := s.lane.Load()
	if ln == nil {
		return
	}
	select {
	case <-ln.stop():
	case <-ctx.Done():
	}
}

// laneInfo serves the lane action.
func (s *Server) laneInfo(stream flight.FlightService_DoActionServer) ([]byte, error) {
	var info LaneInfo
	if ln := s.lane.Load(); ln != nil && fromUnixSocket(stream) && !s.draining.Load() {
		info = LaneInfo{Path: ln.path, Key: ln.key}
	}
	return json.Marshal(info)
}

// serveLane serves one lane connection: the hello, then a session.
func (s *Server) serveLane(c net.Conn, ln *laneState) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		if u, isU := c.(interface{ Unwrap() net.Conn }); isU {
			uc, ok = u.Unwrap().(*net.UnixConn)
		}
	}
	if !ok {
		return fmt.Errorf("lane: %T is not a unix connection", c)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	c.SetReadDeadline(time.Now().Add(laneHelloTimeout))
	hello, err := readLaneFrame(r, 0)
	if err != nil {
		return err
	}
	c.SetReadDeadline(time.Time{})
	var h struct {
		Key string `json:"key"`
	}
	if hello.kind != laneHello || json.Unmarshal(hello.header, &h) != nil ||
		subtle.ConstantTimeCompare([]byte(h.Key), []byte(ln.key)) != 1 {
		msg, _ := json.Marshal(sessionError{Code: "Unauthenticated", Message: "a lane connection starts with hello {\"key\": K}, K from the lane action"})
		c.Write(laneControlFrame(laneRefused, msg))
		return errors.New("lane: refused a connection without the key")
	}
	if s.draining.Load() {
		msg, _ := json.Marshal(sessionError{Code: "Unavailable", Message: errDraining.Error()})
		c.Write(laneControlFrame(laneRefused, msg))
		return errDraining
	}
	if err := s.welcome(uc); err != nil {
		return err
	}
	var wmu sync.Mutex // the session serializes answers; this guards the closing write too
	ss := s.newSession(sessionOutSchema, func(rec arrow.RecordBatch, meta []byte) error {
		bufs, err := laneAnswerFrame(rec, meta)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		nb := net.Buffers(bufs)
		_, err = nb.WriteTo(c)
		return err
	})
	ss.writeFile = func(meta []byte, f *os.File) error {
		wmu.Lock()
		defer wmu.Unlock()
		frame := laneControlFrame(laneAnswer, meta)
		_, _, err := uc.WriteMsgUnix(frame, unix.UnixRights(int(f.Fd())), nil)
		return err
	}
	maxBody := s.cfg.MaxMessageBytes
	// The client's end is its close: calls it left in flight are cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return ss.serve(ctx, func() (arrow.RecordBatch, []byte, error) {
		rec, meta, err := nextLaneRequest(r, maxBody)
		if err != nil {
			cancel()
		}
		return rec, meta, err
	}, func() {})
}

// nextLaneRequest reads one request frame: its rows and its header.
func nextLaneRequest(r *bufio.Reader, maxBody int) (arrow.RecordBatch, []byte, error) {
	f, err := readLaneFrame(r, maxBody)
	if err != nil {
		return nil, nil, err
	}
	if f.kind != laneRequest {
		return nil, nil, fmt.Errorf("%w: kind %d where a request (%d) was due", errLaneFrame, f.kind, laneRequest)
	}
	rec, err := laneRows(f.body)
	if err != nil {
		return nil, nil, err
	}
	return rec, f.header, nil
}

// welcome answers a hello: the lane's version and the generation table,
// its descriptor passed with the frame.
func (s *Server) welcome(c *net.UnixConn) error {
	fd, slots := -1, 0
	if s.cfg.Objects != nil {
		fd, slots = s.cfg.Objects.GenerationFD()
	}
	if fd < 0 {
		slots = 0
	}
	hdr, _ := json.Marshal(struct {
		Version int `json:"version"`
		Slots   int `json:"slots"`
	}{LaneVersion, slots})
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	_, _, err := c.WriteMsgUnix(laneControlFrame(laneWelcome, hdr), oob, nil)
	return err
}

// Leases: how long a leased worker waits for the client's next request,
// and how long a lease lasts at most (the node's own tasks wait for the
// worker that long at most).
const (
	leaseIdle = 10 * time.Millisecond
	leaseMax  = 50 * time.Millisecond
)

// leaseWait bounds how long a lease waits for the scheduler to hand over
// a free worker slot.
const leaseWait = 2 * time.Millisecond

// leaser is a function that can lease a worker (udf.PyFunc).
type leaser interface {
	Lease(idle, max time.Duration, ended func()) (*os.File, error)
}

// lease serves the lease op: an idle worker for req.Fn, its socket
// attached to the answer, or {"lease": false} when none is idle (the
// client then calls through the session). Only a lane can carry it.
func (ss *session) lease(req sessionRequest) {
	if !ss.onLane() {
		ss.answer(req.Req, sessionReply{}, fmt.Errorf("%w: a lease needs the node's lane (docs/protocol.md, \"Lane\")", errNotOnLane))
		return
	}
	fn, err := ss.s.cat.Lookup(req.Fn)
	if err != nil {
		ss.answer(req.Req, sessionReply{}, err)
		return
	}
	granted := false
	reply := sessionReply{Req: req.Req, Lease: &granted}
	l, ok := fn.(leaser)
	if !ok || ss.s.draining.Load() {
		ss.answer(req.Req, reply, nil)
		return
	}
	// The worker's slot is the scheduler's no more until the lease ends:
	// its tasks then wait in its queue, not for a worker a client holds.
	release, free := ss.s.sched.Borrow(scheduler.LaneWorkers, leaseWait)
	if !free {
		ss.answer(req.Req, reply, nil)
		return
	}
	f, err := l.Lease(leaseIdle, leaseMax, release)
	if err != nil {
		release()
		if !errors.Is(err, udf.ErrNoIdleWorker) {
			ss.s.log.Warn("leasing a worker", zap.Error(err))
		}
		ss.answer(req.Req, reply, nil)
		return
	}
	defer f.Close() // the client has its own copy once sent
	granted = true
	reply.IdleMs, reply.MaxMs = leaseIdle.Milliseconds(), leaseMax.Milliseconds()
	meta, err := json.Marshal(reply)
	if err != nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.werr == nil {
		if ss.werr = ss.writeFile(meta, f); ss.werr != nil {
			ss.cancel()
		}
	}
}
