// DoExchange: call a function on a stream of batches.
package flight

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/scheduler"
)

// DoExchange reads the descriptor and input schema, binds the function,
// sends the output schema, then hands the stream to the scheduler.
func (s *Server) DoExchange(stream flight.FlightService_DoExchangeServer) (err error) {
	id, start, name, session := scheduler.NewCallID(), time.Now(), "", false
	defer func() {
		if session {
			err = s.finish("DoExchange", err)
		} else {
			err = s.endCall(id, name, start, err)
		}
	}()
	ctx := scheduler.WithCallID(stream.Context(), id)
	opts, err := callOptions(ctx)
	if err != nil {
		return err
	}
	if opts.Spilled {
		if err := s.checkPeerCert(ctx); err != nil {
			return err
		}
		done, err := s.spills.admit()
		if err != nil {
			return err
		}
		defer done()
	} else if s.draining.Load() {
		return errDraining
	}
	rdr, err := openReader(stream, s)
	if err != nil {
		return err
	}
	if isSession(rdr.LatestFlightDescriptor()) {
		session = true
		return s.serveSession(ctx, stream, rdr)
	}
	src := &source{rdr: rdr}
	started := false
	defer func() {
		if !started {
			src.Close()
		}
	}()
	name, err = functionName(rdr.LatestFlightDescriptor())
	if err != nil {
		return err
	}
	fn, err := s.lookupCall(ctx, name)
	if err != nil {
		return err
	}
	b, err := scheduler.Bind(fn, rdr.Schema(), opts)
	if err != nil {
		return err
	}
	src.rec = s.cfg.Recorder.Begin(name, rdr.Schema())
	w, err := newEagerWriter(stream, b.Out, s.cfg.Mem)
	if err != nil {
		return err
	}
	defer w.Close()
	started = true
	err = s.sched.Run(ctx, b, src, w.WriteInfo)
	if opts.Spilled {
		taskErrorTrailer(stream, err)
	}
	return err
}

// taskErrorTrailer tells the origin of a spilled call that failed in the
// function itself what the function's error was (HeaderTaskError): the
// origin fails its call as if the task had failed there.
func taskErrorTrailer(stream grpc.ServerStream, err error) {
	var te *scheduler.TaskError
	if !errors.As(err, &te) || scheduler.Classify(te.Err, nil) != scheduler.FailFunction {
		return
	}
	stream.SetTrailer(metadata.Pairs(HeaderTaskError, te.Err.Error(), HeaderTaskAttempts, strconv.Itoa(te.Attempts)))
}

// readBudget is how many of the largest messages the reader of one call may
// hold inflated at once: the scheduler's window of two, one in hand and one
// being read. A recorder may hold more until it has written them: its queue
// is added.
const readBudget = 4

// openReader reads the first messages of an exchange up to the schema.
func openReader(stream flight.FlightService_DoExchangeServer, s *Server) (*flight.Reader, error) {
	return s.openInput(stream, readBudget*int64(s.cfg.MaxMessageBytes)+s.cfg.Recorder.QueueBytes(),
		"the descriptor PATH [name] and the schema of the arguments")
}

// functionName returns the function a descriptor names: PATH [name].
func functionName(d *flight.FlightDescriptor) (string, error) {
	if d == nil {
		return "", fmt.Errorf("%w: no flight descriptor: send PATH [function name] with the first message", errMalformed)
	}
	if d.Type != flight.DescriptorPATH || len(d.Path) != 1 || d.Path[0] == "" {
		return "", fmt.Errorf("%w: descriptor must be PATH [function name], got type %s with path %q", errMalformed, d.Type, d.Path)
	}
	return d.Path[0], nil
}
