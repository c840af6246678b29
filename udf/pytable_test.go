// decodeTable: a table function's result stream, good and malformed.
package udf

import (
	"bytes"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// tableStream is cols as a worker's result stream: one batch, as encodeArgs
// writes arguments.
func tableStream(t *testing.T, mem memory.Allocator, cols ...arrow.Array) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := encodeArgs(&buf, cols, cols[0].Len(), mem); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeTable(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	ib := array.NewInt32Builder(mem)
	ib.AppendValues([]int32{0, 0, 2}, nil)
	idx := ib.NewArray()
	ib.Release()
	defer idx.Release()
	vals := int64Array(mem, 7, 8, 9)
	defer vals.Release()

	rows, got, err := decodeTable(tableStream(t, mem, idx, vals), mem)
	if err != nil {
		t.Fatal(err)
	}
	if rows.String() != "[0 0 2]" || got.(*array.Int64).String() != "[7 8 9]" {
		t.Fatalf("got rows %s values %s", rows, got)
	}
	rows.Release()
	got.Release()

	for name, b := range map[string][]byte{
		"one column":    tableStream(t, mem, vals),
		"int64 indices": tableStream(t, mem, vals, vals),
		"not ipc":       []byte("nope"),
	} {
		if _, _, err := decodeTable(b, mem); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want ErrProtocol", name, err)
		}
	}
}
