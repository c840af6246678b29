// Package shmtest makes what tests of objects through shared memory need:
// batches of the types clients put, their Arrow IPC streams, files holding
// them, and waiting for a file to go.
package shmtest

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Schema has the types a client puts: ints and strings with nulls,
// floats, lists and a dictionary.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}},
}, nil)

// Batch makes a batch of Schema with n rows from seed, in Go memory.
func Batch(seed int64, n int) arrow.RecordBatch {
	rng := rand.New(rand.NewSource(seed))
	b := array.NewRecordBuilder(memory.DefaultAllocator, Schema)
	defer b.Release()
	ib := b.Field(0).(*array.Int64Builder)
	fb := b.Field(1).(*array.Float64Builder)
	sb := b.Field(2).(*array.StringBuilder)
	lb := b.Field(3).(*array.ListBuilder)
	lvb := lb.ValueBuilder().(*array.Int32Builder)
	db := b.Field(4).(*array.BinaryDictionaryBuilder)
	for i := 0; i < n; i++ {
		if i%7 == 3 {
			ib.AppendNull()
			sb.AppendNull()
			lb.AppendNull()
		} else {
			ib.Append(rng.Int63())
			sb.Append(fmt.Sprintf("row %d of %d", i, seed))
			lb.Append(true)
			for k := 0; k < i%4; k++ {
				lvb.Append(int32(k))
			}
		}
		fb.Append(rng.Float64())
		if err := db.AppendString([]string{"red", "green", "blue"}[i%3]); err != nil {
			panic(err)
		}
	}
	return b.NewRecordBatch()
}

// Stream is recs as an Arrow IPC stream.
func Stream(t testing.TB, schema *arrow.Schema, recs []arrow.RecordBatch) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, rec := range recs {
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// WriteFile writes b to a new user-only file at path.
func WriteFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Exists reports whether path names anything, a link included.
func Exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// GoneSoon reports whether path is gone, waiting for it up to wait: the
// spiller calls the release hook of an object it spilled after it let go
// of the store's lock, which may be after a put it made room for returned.
func GoneSoon(path string, wait time.Duration) bool {
	for deadline := time.Now().Add(wait); Exists(path) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return !Exists(path)
}
