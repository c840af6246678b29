// Lane frames: the byte format of the same-host lane (docs/protocol.md,
// "Lane"), the worker protocol's framing with a session's rows as body.
package flight

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Lane frame kinds.
const (
	laneHello   = 1  // client: {"key"}
	laneRequest = 2  // client: a session request, rows
	laneWelcome = 10 // node: {"version", "slots"}, the generation table's descriptor attached
	laneAnswer  = 11 // node: a session answer, rows
	laneRefused = 12 // node: {"code", "message"}, then the node closes
)

// LaneVersion is the lane protocol's version, in the welcome.
const LaneVersion = 1

const (
	lanePrefix    = 16
	laneMaxHeader = 1 << 20
)

var errLaneFrame = errors.New("bad lane frame")

// laneFrame is one frame read: its kind, JSON header and body.
type laneFrame struct {
	kind   byte
	header []byte
	body   []byte
}

// readLaneFrame reads one frame whose body is at most maxBody bytes.
// The body is a fresh slice, 8-byte aligned: rows built on it keep it.
func readLaneFrame(r io.Reader, maxBody int) (laneFrame, error) {
	var p [lanePrefix]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return laneFrame{}, err
	}
	f, h, b, err := parseLanePrefix(p[:], maxBody)
	if err != nil {
		return laneFrame{}, err
	}
	buf := make([]byte, h+b)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return laneFrame{}, err
	}
	f.header = buf[:h:h]
	if b > 0 {
		// Its own allocation, so that the offsets are aligned.
		f.body = make([]byte, b)
		copy(f.body, buf[h:])
	}
	return f, nil
}

// parseLanePrefix checks a frame's 16-byte prefix; it returns the frame's
// kind and its header and body lengths.
func parseLanePrefix(p []byte, maxBody int) (laneFrame, int, int, error) {
	kind := p[0]
	if p[1]|p[2]|p[3] != 0 {
		return laneFrame{}, 0, 0, fmt.Errorf("%w: bytes 1-3 of the prefix must be zero", errLaneFrame)
	}
	h := binary.LittleEndian.Uint32(p[4:8])
	b := binary.LittleEndian.Uint64(p[8:16])
	if h > laneMaxHeader {
		return laneFrame{}, 0, 0, fmt.Errorf("%w: a header of %d bytes (at most %d)", errLaneFrame, h, laneMaxHeader)
	}
	if b > uint64(maxBody) {
		return laneFrame{}, 0, 0, fmt.Errorf("%w: a body of %d bytes (at most %d)", errLaneFrame, b, maxBody)
	}
	return laneFrame{kind: kind}, int(h), int(b), nil
}

// laneRows turns a frame's body into a batch of one large_binary column
// (sessionInSchema's shape), without copying: u64 n, n+1 int64 offsets
// from 0 to the data's length, then the data. An empty body is no rows.
func laneRows(body []byte) (arrow.RecordBatch, error) {
	if len(body) == 0 {
		return emptyResult(), nil
	}
	if len(body) < 16 {
		return nil, fmt.Errorf("%w: rows need at least 16 bytes, got %d", errLaneFrame, len(body))
	}
	n := binary.LittleEndian.Uint64(body)
	if n > uint64(len(body)-16)/8 {
		return nil, fmt.Errorf("%w: %d rows do not fit a body of %d bytes", errLaneFrame, n, len(body))
	}
	offs := body[8 : 8+8*(n+1)]
	data := body[8+8*(n+1):]
	prev := int64(0)
	for i := uint64(0); i <= n; i++ {
		o := int64(binary.LittleEndian.Uint64(offs[8*i:]))
		if (i == 0 && o != 0) || o < prev || o > int64(len(data)) {
			return nil, fmt.Errorf("%w: offset %d is %d (offsets rise from 0 to the data's %d bytes)", errLaneFrame, i, o, len(data))
		}
		prev = o
	}
	if prev != int64(len(data)) {
		return nil, fmt.Errorf("%w: the last offset is %d, the data %d bytes", errLaneFrame, prev, len(data))
	}
	d := array.NewData(arrow.BinaryTypes.LargeBinary, int(n),
		[]*memory.Buffer{nil, memory.NewBufferBytes(offs), memory.NewBufferBytes(data)}, nil, 0, 0)
	defer d.Release()
	col := array.NewLargeBinaryData(d)
	defer col.Release()
	return array.NewRecordBatch(sessionOutSchema, []arrow.Array{col}, int64(n)), nil
}

// laneAnswerFrame is the frame of an answer: rec's one large_binary
// column as rows after meta; a null row goes as an empty one, its index
// listed in the header's "nulls". The data is not copied: it is the last
// of the buffers returned.
func laneAnswerFrame(rec arrow.RecordBatch, meta []byte) ([][]byte, error) {
	col, ok := rec.Column(0).(*array.LargeBinary)
	if !ok {
		return nil, fmt.Errorf("lane answer of %s, not large_binary", rec.Column(0).DataType())
	}
	n := col.Len()
	if col.NullN() > 0 {
		meta = withNulls(meta, col)
	}
	var data []byte
	head := make([]byte, lanePrefix, lanePrefix+len(meta)+8*(n+2))
	head = append(head, meta...)
	if n > 0 {
		offs := col.ValueOffsets()
		base := offs[0]
		head = binary.LittleEndian.AppendUint64(head, uint64(n))
		for _, o := range offs {
			head = binary.LittleEndian.AppendUint64(head, uint64(o-base))
		}
		data = col.ValueBytes()
	}
	head[0] = laneAnswer
	binary.LittleEndian.PutUint32(head[4:8], uint32(len(meta)))
	binary.LittleEndian.PutUint64(head[8:16], uint64(len(head)-lanePrefix-len(meta)+len(data)))
	return [][]byte{head, data}, nil
}

// withNulls adds "nulls": [indices] to the JSON object meta.
func withNulls(meta []byte, col *array.LargeBinary) []byte {
	out := append([]byte{}, meta[:len(meta)-1]...)
	out = append(out, `,"nulls":[`...)
	first := true
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) {
			if !first {
				out = append(out, ',')
			}
			first = false
			out = strconv.AppendInt(out, int64(i), 10)
		}
	}
	return append(out, "]}"...)
}

// laneControlFrame is a frame of a header and no body.
func laneControlFrame(kind byte, header []byte) []byte {
	f := make([]byte, lanePrefix, lanePrefix+len(header))
	f[0] = kind
	binary.LittleEndian.PutUint32(f[4:8], uint32(len(header)))
	return append(f, header...)
}
