// Frames of the node <-> Python worker protocol (docs/worker-protocol.md).
package udf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// frameKind is the first byte of a frame.
type frameKind uint8

const (
	frameLoad     frameKind = 1
	frameTask     frameKind = 2
	frameShutdown frameKind = 3
	frameLease    frameKind = 4
	frameReady    frameKind = 10
	frameResult   frameKind = 11
	frameError    frameKind = 12
	frameLeaseEnd frameKind = 13
)

const (
	frameHeaderSize = 16
	maxFrameHeader  = 1 << 20
	maxFrameBody    = 2 << 30
)

// ErrProtocol: a worker sent a frame that breaks the protocol.
var ErrProtocol = errors.New("udf: worker protocol error")

type frame struct {
	kind   frameKind
	header []byte // JSON
	body   []byte
}

func validKind(k frameKind) bool {
	switch k {
	case frameLoad, frameTask, frameShutdown, frameLease, frameReady, frameResult, frameError, frameLeaseEnd:
		return true
	}
	return false
}

// writeFrame sends one frame with a single writev where the writer allows.
func writeFrame(w io.Writer, kind frameKind, header any, body []byte) error {
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	var pre [frameHeaderSize]byte
	pre[0] = byte(kind)
	binary.LittleEndian.PutUint32(pre[4:], uint32(len(h)))
	binary.LittleEndian.PutUint64(pre[8:], uint64(len(body)))
	bufs := net.Buffers{pre[:], h, body}
	_, err = bufs.WriteTo(w)
	return err
}

// readFrame reads one frame, refusing unknown kinds and oversized parts.
func readFrame(r io.Reader) (frame, error) {
	var pre [frameHeaderSize]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return frame{}, err
	}
	f := frame{kind: frameKind(pre[0])}
	hl := binary.LittleEndian.Uint32(pre[4:])
	bl := binary.LittleEndian.Uint64(pre[8:])
	switch {
	case !validKind(f.kind):
		return frame{}, fmt.Errorf("%w: unknown frame kind %d", ErrProtocol, pre[0])
	case pre[1] != 0 || pre[2] != 0 || pre[3] != 0:
		return frame{}, fmt.Errorf("%w: reserved bytes not zero", ErrProtocol)
	case hl > maxFrameHeader:
		return frame{}, fmt.Errorf("%w: header of %d bytes", ErrProtocol, hl)
	case bl > maxFrameBody:
		return frame{}, fmt.Errorf("%w: body of %d bytes", ErrProtocol, bl)
	}
	var err error
	if f.header, err = readN(r, int64(hl)); err != nil {
		return frame{}, err
	}
	if f.body, err = readN(r, int64(bl)); err != nil {
		return frame{}, err
	}
	return f, nil
}

// readN reads exactly n bytes, growing its buffer as bytes arrive rather
// than trusting a length a peer claimed.
func readN(r io.Reader, n int64) ([]byte, error) {
	const chunk = 1 << 20
	if n <= chunk {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, unexpected(err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeHeader unmarshals a frame's JSON header into v.
func (f frame) decodeHeader(v any) error {
	if err := json.Unmarshal(f.header, v); err != nil {
		return fmt.Errorf("%w: bad header of frame kind %d: %v", ErrProtocol, f.kind, err)
	}
	return nil
}
