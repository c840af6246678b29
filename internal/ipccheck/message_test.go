// The fuzz target over the check of one message header.
package ipccheck

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/quiver-udf/quiver/internal/shmtest"
)

// messagesOf returns the header and body of every message of stream b.
func messagesOf(t testing.TB, b []byte) (headers, bodies [][]byte) {
	f := NewFrames(b, maxMessage)
	for {
		h, body, err := f.Next()
		if errors.Is(err, io.EOF) {
			return headers, bodies
		}
		if err != nil {
			t.Fatal(err)
		}
		headers, bodies = append(headers, h), append(bodies, body)
	}
}

// FuzzCheck: whatever a header and body hold, Checker.Check after a
// schema returns an error or nil; it never panics and never reads outside
// the bytes it was given. Compressed batches must not claim to inflate to
// more than MaxBody.
func FuzzCheck(f *testing.F) {
	rec := shmtest.Batch(1, 100)
	defer rec.Release()
	var zstd bytes.Buffer
	w := ipc.NewWriter(&zstd, ipc.WithSchema(shmtest.Schema), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		f.Fatal(err)
	}
	w.Close()
	schemaHeader := []byte(nil)
	for _, b := range [][]byte{shmtest.Stream(f, shmtest.Schema, []arrow.RecordBatch{rec}), zstd.Bytes()} {
		headers, bodies := messagesOf(f, b)
		schemaHeader = headers[0]
		for i := range headers {
			f.Add(headers[i], bodies[i])
		}
	}
	f.Fuzz(func(t *testing.T, header, body []byte) {
		c := Checker{MaxBody: 1 << 20}
		if err := c.Check(guarded(t, schemaHeader), nil); err != nil {
			t.Fatal(err)
		}
		h, b := guarded(t, header), guarded(t, body)
		if err := c.Check(h, b); err != nil {
			return
		}
		if !Compressed(h) {
			return
		}
		// Accepted and compressed: every buffer's declared size is bounded.
		tab, ok, err := fbuf(h).batch()
		if err != nil || !ok {
			t.Fatalf("accepted a batch whose table cannot be read: %v", err)
		}
		bufs, n, _ := fbuf(h).vector(tab, 2, 16)
		total := int64(0)
		for i := 0; i < n; i++ {
			off := binary.LittleEndian.Uint64(h[bufs+16*uint64(i):])
			length := binary.LittleEndian.Uint64(h[bufs+16*uint64(i)+8:])
			if length >= 8 {
				if size := int64(binary.LittleEndian.Uint64(b[off:])); size != -1 {
					total += size
				}
			}
		}
		if total > 1<<20 {
			t.Fatalf("accepted compressed buffers that inflate to %d bytes", total)
		}
	})
}
