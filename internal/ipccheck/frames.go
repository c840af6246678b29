// IPC streams held as bytes (a mapped file): their messages, framed and
// checked, and the whole stream decoded and validated without a copy.
package ipccheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// MessageSlack is what a message held in bytes must leave of the largest
// message a transport sends: room for the framing around it.
const MessageSlack = 1024

// Frames reads the messages of an Arrow IPC stream held in b, checking
// every length against b and every header with a Checker before anyone
// parses it. Next ends with io.EOF at the end-of-stream marker or at the
// end of b.
type Frames struct {
	b          []byte
	off        int
	maxMessage int // the most one message (header and body) may hold, with MessageSlack
	chk        Checker
}

// NewFrames reads the stream in b, whose every message must fit, with
// MessageSlack, in maxMessage bytes.
func NewFrames(b []byte, maxMessage int) *Frames {
	return &Frames{b: b, maxMessage: maxMessage, chk: Checker{MaxBody: maxMessage}}
}

// Offset is where the next message starts in the stream's bytes.
func (f *Frames) Offset() int { return f.off }

// Next returns the next message's header flatbuffer and body, both slices
// of the stream's bytes capped at their length.
func (f *Frames) Next() (header, body []byte, err error) {
	rest := f.b[f.off:]
	if len(rest) == 0 {
		return nil, nil, io.EOF // a stream may end without its marker
	}
	if len(rest) < 8 {
		return nil, nil, fmt.Errorf("%d bytes at offset %d: not a message prefix", len(rest), f.off)
	}
	switch cont := binary.LittleEndian.Uint32(rest); cont {
	case 0xFFFFFFFF:
	case 0:
		return nil, nil, io.EOF // the end-of-stream marker before format 0.15
	default:
		return nil, nil, fmt.Errorf("offset %d: no continuation marker (0x%08x)", f.off, cont)
	}
	n := int64(int32(binary.LittleEndian.Uint32(rest[4:])))
	if n == 0 {
		return nil, nil, io.EOF
	}
	if n < 8 || n > int64(len(rest)-8) {
		return nil, nil, fmt.Errorf("offset %d: a message header of %d bytes, %d left", f.off, n, len(rest)-8)
	}
	end := 8 + int(n)
	header = rest[8:end:end]
	bodyLen, err := fbuf(header).bodyLength()
	if err == nil {
		err = fbuf(header).checkRows()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("offset %d: %w", f.off, err)
	}
	if bodyLen < 0 || bodyLen > int64(len(rest)-end) {
		return nil, nil, fmt.Errorf("offset %d: a message body of %d bytes, %d left", f.off, bodyLen, len(rest)-end)
	}
	if n+bodyLen > int64(f.maxMessage)-MessageSlack {
		return nil, nil, fmt.Errorf("offset %d: a message of %d bytes, more than the node sends in one (%d); write smaller batches",
			f.off, n+bodyLen, f.maxMessage-MessageSlack)
	}
	bend := end + int(bodyLen)
	body = rest[end:bend:bend]
	if err := f.chk.Check(header, body); err != nil {
		return nil, nil, fmt.Errorf("offset %d: IPC message header: %w", f.off, err)
	}
	f.off += bend
	return header, body, nil
}

// ErrFault: reading the bytes faulted (another process cut a mapped file
// short), or a parser read outside the bytes it was given.
var ErrFault = errors.New("ipccheck: memory fault")

// recovered turns a panic recovered while reading bytes into an error; a
// memory fault is ErrFault.
func recovered(r any) error {
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		return fmt.Errorf("%w at %#x: %v", ErrFault, f.Addr(), r)
	}
	return fmt.Errorf("%v", r)
}

// Each calls f with every message of the IPC stream b, as Frames reads
// them, and stops at the first error f returns. A fault reading b (a
// mapped file cut short meanwhile) is an error wrapping ErrFault, not a
// crash; a message Frames refuses is an error naming the stream corrupt.
func Each(b []byte, maxMessage int, f func(header, body []byte) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the stream's bytes: %w", recovered(r))
		}
	}()
	frames := NewFrames(b, maxMessage)
	for {
		header, body, err := frames.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the stream is corrupt: %w", err)
		}
		if err := f(header, body); err != nil {
			return err
		}
	}
}

// Stream checks that b holds one Arrow IPC stream whose every message fits
// in maxMessage bytes (less MessageSlack), decoding every batch (without a
// copy: arrays point into b) and validating it with Batch; it returns the
// rows. It reads nothing outside b, and a fault reading b is an error
// wrapping ErrFault, not a crash. Buffers that compressed batches inflate
// to come from mem, at most budget bytes at once.
func Stream(b []byte, maxMessage int, mem memory.Allocator, budget int64) (rows int64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			rows, err = 0, recovered(r)
		}
	}()
	msgs := &messages{frames: NewFrames(b, maxMessage)}
	msgs.refs.Store(1) // the reader's, released with it
	rdr, err := ipc.NewReaderFromMessageReader(msgs, ipc.WithAllocator(NewBudget(mem, budget)))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("no schema: the stream is empty")
		}
		return 0, fmt.Errorf("reading the schema: %w", err)
	}
	defer rdr.Release()
	n := 0
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if err := Batch(rec); err != nil {
			return 0, fmt.Errorf("batch %d: %w", n, err)
		}
		rows += rec.NumRows()
		n++
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("batch %d: %w", n, err)
	}
	return rows, nil
}

// messages is the ipc.MessageReader over Frames: each message's buffers
// point into the stream's bytes.
type messages struct {
	frames *Frames
	msg    *ipc.Message
	refs   atomic.Int64
}

func (m *messages) Message() (*ipc.Message, error) {
	header, body, err := m.frames.Next()
	if m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
	if err != nil {
		return nil, err
	}
	m.msg = ipc.NewMessage(memory.NewBufferBytes(header), memory.NewBufferBytes(body))
	return m.msg, nil
}

func (m *messages) Retain() { m.refs.Add(1) }

func (m *messages) Release() {
	if m.refs.Add(-1) == 0 && m.msg != nil {
		m.msg.Release()
		m.msg = nil
	}
}
