// Objects: a stream of record batches sharing a schema, or a byte blob.
package objectstore

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Object is what the store holds: record batches of one schema (a stream,
// possibly empty) or, when Schema is nil, the bytes of Blob.
//
// The store never modifies an object. Batches are reference counted: Put
// retains them (the caller keeps and releases its own references) and the
// store releases its references when it spills or frees the object. A blob
// is taken as is: the caller must not modify it after Put.
type Object struct {
	Schema  *arrow.Schema
	Batches []arrow.RecordBatch
	Blob    []byte
}

// Batches returns a stream object: recs must all have schema.
func Batches(schema *arrow.Schema, recs []arrow.RecordBatch) Object {
	return Object{Schema: schema, Batches: recs}
}

// Blob returns a blob object.
func Blob(b []byte) Object { return Object{Blob: b} }

// IsBlob reports whether o is a blob.
func (o Object) IsBlob() bool { return o.Schema == nil }

// Rows is the number of rows over all batches; a blob has none.
func (o Object) Rows() int64 {
	var n int64
	for _, rec := range o.Batches {
		n += rec.NumRows()
	}
	return n
}

// Size is what o counts against the memory bound: the bytes of every
// buffer its batches reference (a buffer shared by several arrays or
// batches counts once), or the length of the blob.
func (o Object) Size() int64 {
	if o.IsBlob() {
		return int64(len(o.Blob))
	}
	seen := make(map[*memory.Buffer]struct{})
	var n int64
	for _, rec := range o.Batches {
		for _, col := range rec.Columns() {
			n += dataSize(col.Data(), seen)
		}
	}
	return n
}

func dataSize(d arrow.ArrayData, seen map[*memory.Buffer]struct{}) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b == nil {
			continue
		}
		if _, ok := seen[b]; !ok {
			seen[b] = struct{}{}
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataSize(c, seen)
	}
	if dict := d.Dictionary(); dict != nil {
		if ad, ok := dict.(*array.Data); !ok || ad != nil { // a typed nil means none
			n += dataSize(dict, seen)
		}
	}
	return n
}

// check rejects an object whose batches do not all have its schema.
func (o Object) check() error {
	if o.IsBlob() {
		if len(o.Batches) != 0 {
			return fmt.Errorf("%w: %d batches without a schema", ErrInvalidObject, len(o.Batches))
		}
		return nil
	}
	for i, rec := range o.Batches {
		if rec == nil {
			return fmt.Errorf("%w: batch %d is nil", ErrInvalidObject, i)
		}
		if !rec.Schema().Equal(o.Schema) {
			return fmt.Errorf("%w: batch %d has schema %s, the object %s", ErrInvalidObject, i, rec.Schema(), o.Schema)
		}
	}
	return nil
}

// retain adds a reference to every batch and returns o.
func (o Object) retain() Object {
	for _, rec := range o.Batches {
		rec.Retain()
	}
	return o
}

// release drops the references retain added.
func (o Object) release() {
	for _, rec := range o.Batches {
		rec.Release()
	}
}
