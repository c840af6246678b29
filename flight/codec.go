// The node's gRPC codec: protobuf, except that FlightData bodies skip
// protobuf's own copies.
package flight

import (
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec this one defers to
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// FlightData's field numbers (Flight.proto).
const (
	fdDescriptor protowire.Number = 1
	fdHeader     protowire.Number = 2
	fdMetadata   protowire.Number = 3
	fdBody       protowire.Number = 1000
)

// codec is gRPC's protobuf codec with two exceptions. A FlightData the
// node sends as an outData goes out as its header fields, encoded here,
// followed by its body buffer as it is (protobuf would copy the body into
// a new message buffer; gRPC copies it into its frames either way). A
// FlightData received is parsed here with its byte fields pointing into
// the one copy of the message made for it (protobuf would copy the body
// again). Every other message, and a FlightData with fields this parser
// does not know, goes through the standard codec, so the wire format is
// protobuf's in both directions.
type codec struct{ std encoding.CodecV2 }

func newCodec() codec { return codec{std: encoding.GetCodecV2("proto")} }

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if o, ok := v.(*outData); ok {
		return o.marshal()
	}
	return c.std.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if fd, ok := v.(*flight.FlightData); ok {
		return unmarshalFlightData(data.Materialize(), fd)
	}
	return c.std.Unmarshal(data, v)
}

// outData is a FlightData whose body is a buffer of pool: the codec hands
// the buffer to gRPC, which returns it to the pool once written. Under
// another codec it is the FlightData it embeds.
type outData struct {
	*flight.FlightData
	body *[]byte // holds DataBody
	pool mem.BufferPool
}

func (o *outData) marshal() (mem.BufferSlice, error) {
	fd := o.FlightData
	hdr := make([]byte, 0, 32+len(fd.DataHeader)+len(fd.AppMetadata))
	if fd.FlightDescriptor != nil {
		d, err := proto.Marshal(fd.FlightDescriptor)
		if err != nil {
			return nil, err
		}
		hdr = protowire.AppendTag(hdr, fdDescriptor, protowire.BytesType)
		hdr = protowire.AppendBytes(hdr, d)
	}
	if len(fd.DataHeader) > 0 {
		hdr = protowire.AppendTag(hdr, fdHeader, protowire.BytesType)
		hdr = protowire.AppendBytes(hdr, fd.DataHeader)
	}
	if len(fd.AppMetadata) > 0 {
		hdr = protowire.AppendTag(hdr, fdMetadata, protowire.BytesType)
		hdr = protowire.AppendBytes(hdr, fd.AppMetadata)
	}
	if len(fd.DataBody) == 0 {
		o.pool.Put(o.body)
		return mem.BufferSlice{mem.SliceBuffer(hdr)}, nil
	}
	hdr = protowire.AppendTag(hdr, fdBody, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(len(fd.DataBody)))
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.NewBuffer(o.body, o.pool)}, nil
}

// unmarshalFlightData parses b, a whole FlightData message, into fd, as
// proto.Unmarshal does but with the byte fields aliasing b.
func unmarshalFlightData(b []byte, fd *flight.FlightData) error {
	proto.Reset(fd)
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if typ != protowire.BytesType || (num != fdDescriptor && num != fdHeader && num != fdMetadata && num != fdBody) {
			proto.Reset(fd)
			return proto.Unmarshal(b, fd) // a field this parser does not know: keep it as protobuf does
		}
		v, m := protowire.ConsumeBytes(rest[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		rest = rest[n+m:]
		v = v[:len(v):len(v)] // appends to a field never write into the next one
		switch num {
		case fdDescriptor:
			if fd.FlightDescriptor == nil {
				fd.FlightDescriptor = &flight.FlightDescriptor{}
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, fd.FlightDescriptor); err != nil {
				return err
			}
		case fdHeader:
			fd.DataHeader = v
		case fdMetadata:
			fd.AppMetadata = v
		case fdBody:
			fd.DataBody = v
		}
	}
	return nil
}

// bodyPool holds the buffers FlightData bodies are written into; gRPC puts
// each back once its frames are written. readPool holds the buffers gRPC
// reads DATA frames into.
var bodyPool, readPool = &tieredPool{}, &tieredPool{}
