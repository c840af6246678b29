// One DoExchange stream of a worker: write a batch, read its result.
package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/status"
)

// errBadResult is a result with another number of rows than its input.
var errBadResult = errors.New("BadResult")

// errNoResult is a stream that ended cleanly without the result of a batch
// it was sent: the batch's rows are lost.
var errNoResult = fmt.Errorf("%w: the stream ended without a result", errBadResult)

// stream is one DoExchange in lockstep: the input schema goes with the
// first batch, the output schema is read with the first result.
type stream struct {
	ex     flight.FlightService_DoExchangeClient
	cancel func()
	schema *arrow.Schema
	ps     *sender
	w      *ipc.Writer
	rdr    *flight.Reader
}

func newStream(ex flight.FlightService_DoExchangeClient, cancel func(), function string, schema *arrow.Schema, mem memory.Allocator) *stream {
	ps := &sender{stream: ex, desc: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{function}}}
	return &stream{ex: ex, cancel: cancel, schema: schema, ps: ps,
		w: ipc.NewWriterWithPayloadWriter(ps, ipc.WithSchema(schema), ipc.WithAllocator(mem))}
}

// roundTrip writes rec and reads its result; it returns the bytes written
// and the result, when one came (valid until the next call). A result with
// another number of rows comes with an errBadResult.
func (s *stream) roundTrip(rec arrow.RecordBatch) (int64, arrow.RecordBatch, error) {
	before := s.ps.bytes
	if err := s.w.Write(rec); err != nil {
		return s.ps.bytes - before, nil, s.why(err)
	}
	n := s.ps.bytes - before
	if s.rdr == nil {
		rdr, err := flight.NewRecordReader(s.ex)
		if err != nil {
			return n, nil, err
		}
		s.rdr = rdr
	}
	if !s.rdr.Next() {
		if err := s.rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
			return n, nil, err
		}
		return n, nil, errNoResult
	}
	out := s.rdr.RecordBatch()
	if got := out.NumRows(); got != rec.NumRows() {
		return n, out, fmt.Errorf("%w: %d rows for an input of %d", errBadResult, got, rec.NumRows())
	}
	return n, out, nil
}

// why turns a failed write into the call's status: when the server has
// ended the stream, Send says io.EOF and Recv says why.
func (s *stream) why(err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		if _, rerr := s.ex.Recv(); rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return fmt.Errorf("%w: the server ended the stream before the batch was sent", errBadResult)
			}
			return rerr
		}
	}
}

// finish ends the stream cleanly: the end of the input, then the rest of
// the output and the status. It returns the rows of results that came
// after the last answer (a lockstep stream expects none).
func (s *stream) finish() (extra int64) {
	defer s.abandon()
	if s.w.Close() != nil || s.ex.CloseSend() != nil {
		return 0
	}
	if s.rdr != nil {
		for s.rdr.Next() {
			extra += s.rdr.RecordBatch().NumRows()
		}
		return extra
	}
	for {
		if _, err := s.ex.Recv(); err != nil {
			return 0
		}
	}
}

// abandon cancels the stream and frees what it holds.
func (s *stream) abandon() {
	s.cancel()
	if s.rdr != nil {
		s.rdr.Release()
		s.rdr = nil
	}
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
}

// codeOf names an error by its gRPC code ("NotFound"), or "BadResult".
func codeOf(err error) (code, msg string) {
	if errors.Is(err, errBadResult) {
		return "BadResult", err.Error()
	}
	st, _ := status.FromError(err)
	return st.Code().String(), st.Message()
}

// sender is the ipc.PayloadWriter of a stream: one FlightData per
// payload, the descriptor with the first (the schema). It counts the bytes
// of the payloads after the schema.
type sender struct {
	stream flight.DataStreamWriter
	desc   *flight.FlightDescriptor
	sent   int
	bytes  int64
	body   bytes.Buffer
}

func (s *sender) Start() error { return nil }
func (s *sender) Close() error { return nil }

func (s *sender) WritePayload(p ipc.Payload) error {
	meta := p.Meta()
	defer meta.Release()
	s.body.Reset()
	if err := p.SerializeBody(&s.body); err != nil {
		return err
	}
	fd := flight.FlightData{DataHeader: meta.Bytes(), DataBody: s.body.Bytes()}
	if s.sent == 0 {
		fd.FlightDescriptor = s.desc
	} else {
		s.bytes += int64(len(fd.DataHeader) + len(fd.DataBody))
	}
	s.sent++
	return s.stream.Send(&fd)
}
