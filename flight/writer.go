// Output stream writer that sends the schema before any data.
package flight

import (
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/scheduler"
)

// eagerWriter writes record batches to a Flight stream. arrow-go's writer
// sends the schema lazily, with the first batch; lockstep clients wait for
// the schema before they send that batch's input, so eagerWriter sends it
// at once and drops the copy the IPC writer emits later.
type eagerWriter struct {
	ipc  *ipc.Writer
	ps   *payloadSender
	meta []byte
}

// newEagerWriter sends schema on stream and returns a writer for batches.
func newEagerWriter(stream flight.DataStreamWriter, schema *arrow.Schema, mem memory.Allocator) (*eagerWriter, error) {
	ps := &payloadSender{stream: stream}
	p := ipc.GetSchemaPayload(schema, mem)
	err := ps.WritePayload(p)
	p.Release()
	if err != nil {
		return nil, err
	}
	ps.skip = 1
	return &eagerWriter{ipc: ipc.NewWriterWithPayloadWriter(ps, ipc.WithSchema(schema), ipc.WithAllocator(mem)), ps: ps}, nil
}

// Write sends one record batch.
func (w *eagerWriter) Write(rec arrow.RecordBatch) error { return w.ipc.Write(rec) }

// WriteInfo sends one record batch with what it cost as the message's
// app_metadata: JSON {"nulled": rows made null, "work_ms": evaluation time,
// "solo_ms": its cost as one task} (scheduler.BatchInfo).
func (w *eagerWriter) WriteInfo(rec arrow.RecordBatch, info scheduler.BatchInfo) error {
	w.meta = append(w.meta[:0], `{"nulled":`...)
	w.meta = strconv.AppendInt(w.meta, info.Nulled, 10)
	w.meta = append(w.meta, `,"work_ms":`...)
	w.meta = strconv.AppendFloat(w.meta, info.WorkMs, 'f', 3, 64)
	w.meta = append(w.meta, `,"solo_ms":`...)
	w.meta = strconv.AppendFloat(w.meta, info.SoloMs, 'f', 3, 64)
	w.meta = append(w.meta, '}')
	w.ps.fd.AppMetadata = w.meta
	defer func() { w.ps.fd.AppMetadata = nil }()
	return w.ipc.Write(rec)
}

// Close ends the IPC writer; the stream itself ends with the call.
func (w *eagerWriter) Close() error { return w.ipc.Close() }

// payloadSender is the ipc.PayloadWriter under eagerWriter: one FlightData
// message per IPC payload. Its body is written once, into a buffer of
// bodyPool, which the node's codec hands to gRPC as it is (codec.go).
type payloadSender struct {
	stream flight.DataStreamWriter
	fd     flight.FlightData
	skip   int // payloads to drop: the IPC writer's own schema message
}

// msgSender is what a gRPC stream is under the DataStreamWriter interface.
type msgSender interface{ SendMsg(any) error }

// appendWriter appends what is written to *b.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// countWriter counts what is written to it.
type countWriter struct{ n *int }

func (w countWriter) Write(p []byte) (int, error) {
	*w.n += len(p)
	return len(p), nil
}

func (s *payloadSender) Start() error { return nil }
func (s *payloadSender) Close() error { return nil }

func (s *payloadSender) WritePayload(p ipc.Payload) error {
	if s.skip > 0 {
		s.skip--
		return nil
	}
	meta := p.Meta()
	defer meta.Release()
	s.fd.DataHeader = meta.Bytes()
	size := 0
	if err := p.SerializeBody(countWriter{&size}); err != nil {
		return err
	}
	body := bodyPool.Get(size)
	*body = (*body)[:0]
	if err := p.SerializeBody(appendWriter{body}); err != nil {
		bodyPool.Put(body)
		return err
	}
	s.fd.DataBody = *body
	defer func() { s.fd.DataBody = nil }()
	if ms, ok := s.stream.(msgSender); ok {
		return ms.SendMsg(&outData{FlightData: &s.fd, body: body, pool: bodyPool}) // the codec owns body now
	}
	err := s.stream.Send(&s.fd) // encoded (copied) before Send returns
	bodyPool.Put(body)
	return err
}
