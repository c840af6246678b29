// Frame encoding round trips and the reader's refusals.
package udf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := writeFrame(&buf, frameTask, map[string]any{"task": 7, "fn": "ab"}, []byte("body")); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(&buf, frameShutdown, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Task int    `json:"task"`
		Fn   string `json:"fn"`
	}
	if err := f.decodeHeader(&h); err != nil {
		t.Fatal(err)
	}
	if f.kind != frameTask || h.Task != 7 || h.Fn != "ab" || string(f.body) != "body" {
		t.Fatalf("got %+v %+v", f, h)
	}
	if f, err = readFrame(&buf); err != nil || f.kind != frameShutdown || len(f.body) != 0 {
		t.Fatalf("second frame: %+v %v", f, err)
	}
	if _, err := readFrame(&buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestTaskFrameArenaFields: a TASK names its arguments in the arena, or
// carries them in the body without an arena range.
func TestTaskFrameArenaFields(t *testing.T) {
	for _, c := range []struct {
		hdr  taskHeader
		body []byte
		want string
	}{
		{taskHeader{Task: 1, Fn: "ab"}, []byte("ipc"), `{"task":1,"fn":"ab"}`},
		{taskHeader{Task: 2, Fn: "ab", ArenaSize: arenaInitial}, []byte("ipc"), `{"task":2,"fn":"ab","arena_size":8388608}`},
		{taskHeader{Task: 3, Fn: "ab", Arena: []uint64{0, 1234}, ArenaSize: arenaInitial}, nil,
			`{"task":3,"fn":"ab","arena":[0,1234],"arena_size":8388608}`},
	} {
		var buf bytes.Buffer
		if err := writeFrame(&buf, frameTask, c.hdr, c.body); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.header) != c.want || !bytes.Equal(f.body, c.body) {
			t.Fatalf("header %s body %q, want %s %q", f.header, f.body, c.want, c.body)
		}
	}
}

func TestFrameRefusals(t *testing.T) {
	pre := func(kind byte, hl uint32, bl uint64) []byte {
		b := make([]byte, frameHeaderSize)
		b[0] = kind
		binary.LittleEndian.PutUint32(b[4:], hl)
		binary.LittleEndian.PutUint64(b[8:], bl)
		return b
	}
	reserved := pre(byte(frameResult), 0, 0)
	reserved[2] = 1
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"unknown kind":     {pre(99, 0, 0), ErrProtocol},
		"reserved bytes":   {reserved, ErrProtocol},
		"huge header":      {pre(byte(frameResult), maxFrameHeader+1, 0), ErrProtocol},
		"huge body":        {pre(byte(frameResult), 2, maxFrameBody+1), ErrProtocol},
		"truncated header": {append(pre(byte(frameResult), 10, 0), '{'), io.ErrUnexpectedEOF},
		"truncated body":   {append(pre(byte(frameResult), 2, 5), '{', '}', 'x'), io.ErrUnexpectedEOF},
		"short prefix":     {[]byte{11, 0, 0}, io.ErrUnexpectedEOF},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := readFrame(bytes.NewReader(c.in)); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzReadFrame: no input makes the frame reader panic or accept a frame
// that breaks the limits.
func FuzzReadFrame(f *testing.F) {
	var ok bytes.Buffer
	_ = writeFrame(&ok, frameResult, map[string]int{"task": 1}, []byte{1, 2, 3})
	f.Add(ok.Bytes())
	f.Add([]byte{})
	f.Add([]byte{12, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := readFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if !validKind(fr.kind) || len(fr.header) > maxFrameHeader || len(fr.body) > maxFrameBody {
			t.Fatalf("accepted a bad frame: kind %d", fr.kind)
		}
		if len(fr.header)+len(fr.body)+frameHeaderSize > len(in) {
			t.Fatalf("frame larger than its input")
		}
	})
}
