// decodeTable: a table function's result stream, good and malformed.
package udf

import (
	"bytes"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func tableStream(t *testing.T, mem memory.Allocator, cols ...arrow.Array) []byte {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: "c", Type: c.DataType(), Nullable: true}
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(cols[0].Len()))
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
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
