// The node's codec against protobuf's own: the same bytes on the wire, the
// same messages parsed, bodies returned to their pool once sent.
package flight

import (
	"bytes"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func codecSamples() []*flight.FlightData {
	body := bytes.Repeat([]byte{7}, 300_000)
	return []*flight.FlightData{
		{},
		{DataHeader: []byte("header")},
		{DataHeader: []byte("h"), AppMetadata: []byte(`{"nulled":0}`), DataBody: body},
		{DataBody: []byte{1}},
		{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte("cmd")}, DataHeader: []byte("h")},
		{FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"a", "b"}}, DataBody: body[:100]},
	}
}

// outOf is fd as payloadSender sends it: its body in a buffer of bodyPool.
func outOf(fd *flight.FlightData) *outData {
	body := bodyPool.Get(0)
	*body = append(*body, fd.DataBody...)
	cp := proto.Clone(fd).(*flight.FlightData)
	cp.DataBody = *body
	return &outData{FlightData: cp, body: body, pool: bodyPool}
}

func TestCodecWritesWhatProtobufWrites(t *testing.T) {
	c := newCodec()
	for i, fd := range codecSamples() {
		want, err := proto.MarshalOptions{Deterministic: true}.Marshal(fd)
		if err != nil {
			t.Fatal(err)
		}
		data, err := c.Marshal(outOf(fd))
		if err != nil {
			t.Fatal(err)
		}
		got := data.Materialize()
		data.Free()
		if !bytes.Equal(got, want) {
			t.Fatalf("sample %d: %d bytes on the wire, protobuf writes %d (%x vs %x)", i, len(got), len(want), head(got), head(want))
		}
		var back flight.FlightData
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, &back); err != nil || !proto.Equal(&back, fd) {
			t.Fatalf("sample %d: parsed %v, %v; want the message sent", i, &back, err)
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 24)] }

func TestCodecParsesAcrossBuffersAndIntoOneCopy(t *testing.T) {
	fd := codecSamples()[2]
	wire, _ := proto.Marshal(fd)
	var parts mem.BufferSlice
	for off := 0; off < len(wire); off += 16384 { // as gRPC reads it: frame by frame
		parts = append(parts, mem.SliceBuffer(wire[off:min(off+16384, len(wire))]))
	}
	var got flight.FlightData
	if err := newCodec().Unmarshal(parts, &got); err != nil || !proto.Equal(&got, fd) {
		t.Fatalf("parsed %v", err)
	}
	wire[len(wire)-1] = 99 // the parsed message holds its own copy
	if got.DataBody[len(got.DataBody)-1] != 7 {
		t.Fatal("the body aliases gRPC's buffers")
	}
	got.DataHeader = append(got.DataHeader, 'x') // appending to a field leaves the next one alone
	if !bytes.Equal(got.AppMetadata, fd.AppMetadata) {
		t.Fatal("appending to data_header overwrote app_metadata")
	}
}

func TestCodecKeepsUnknownFields(t *testing.T) {
	fd := &flight.FlightData{DataHeader: []byte("h"), DataBody: []byte("body")}
	wire, _ := proto.Marshal(fd)
	wire = protowire.AppendTag(wire, 77, protowire.VarintType)
	wire = protowire.AppendVarint(wire, 5)
	var got, want flight.FlightData
	if err := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(wire, &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, &want) || len(got.ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("an unknown field was lost")
	}
}

// countingPool records what is put back.
type countingPool struct{ put []*[]byte }

func (p *countingPool) Get(n int) *[]byte { b := make([]byte, n); return &b }
func (p *countingPool) Put(b *[]byte)     { p.put = append(p.put, b) }

func TestCodecReturnsBodiesToThePool(t *testing.T) {
	for _, fd := range []*flight.FlightData{codecSamples()[2], codecSamples()[1]} {
		pool := &countingPool{}
		o := outOf(fd)
		o.pool = pool
		data, err := newCodec().Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if len(fd.DataBody) > 0 && len(pool.put) != 0 {
			t.Fatal("the body went back to its pool before gRPC freed it")
		}
		data.Free()
		if len(pool.put) != 1 || pool.put[0] != o.body {
			t.Fatalf("after Free the pool got %d buffers back, want the body's", len(pool.put))
		}
	}
}

func FuzzFlightDataCodec(f *testing.F) {
	for _, fd := range codecSamples() {
		b, _ := proto.Marshal(fd)
		f.Add(b[:min(len(b), 4096)])
	}
	f.Add([]byte{0x12, 0x80})             // a header longer than the message
	f.Add([]byte{0x82, 0x3e, 0x01, 0x05}) // body 1000 as bytes
	f.Add([]byte{0x80, 0x3e, 0x05})       // body 1000 as a varint
	f.Fuzz(func(t *testing.T, wire []byte) {
		var got, want flight.FlightData
		gotErr := newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got)
		wantErr := proto.Unmarshal(wire, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("codec: %v, protobuf: %v", gotErr, wantErr)
		}
		if gotErr == nil && !proto.Equal(&got, &want) {
			t.Fatalf("codec parsed %v, protobuf %v", &got, &want)
		}
	})
}
