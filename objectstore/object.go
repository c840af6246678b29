// Objects: a stream of record batches sharing a schema, or a byte blob.
package objectstore

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Object is what the store holds: record batches of one schema (a stream,
// possibly empty); or, when Stream is set, the bytes of one Arrow IPC
// stream; or, when both Schema and Stream are nil, the bytes of Blob.
//
// The store never modifies an object. Batches are reference counted: Put
// retains them (the caller keeps and releases its own references) and the
// store releases its references when it spills or frees the object. A blob
// or a stream's bytes are taken as they are: the caller must not modify
// them after Put.
type Object struct {
	Schema  *arrow.Schema
	Batches []arrow.RecordBatch
	Blob    []byte
	// Stream holds an Arrow IPC stream (schema, batches, end of stream) as
	// bytes, which the store does not parse: the caller checked them. Schema,
	// Batches and Blob are then empty. A mapped file is one (see Free).
	Stream []byte
	// Free, when set, releases the memory behind the object's data (say,
	// unmaps a file). Put hands it to the store, which calls it exactly
	// once, outside its lock, when it no longer holds that data in memory:
	// when the object is freed, spilled (it comes back from disk as Go
	// memory, without a hook) or dropped at Close; and when the put fails
	// or stores nothing (the id existed). An object freed while the spiller
	// writes it out has its hook called at the end of the write, on the
	// spiller's goroutine. Never while the object is pinned:
	// a pinned object is neither freed nor spilled, and Close leaves the
	// data of one pinned then to its last Unpin. Data returned by Pin has
	// Free nil.
	Free func()

	hook *hook // the store's wrapper of Free, counting the data's holders
}

// hook calls free when the last holder of an object's data lets it go: the
// store, and the spiller while it writes the data to disk.
type hook struct {
	holders atomic.Int64
	free    func()
}

// Batches returns a stream object: recs must all have schema.
func Batches(schema *arrow.Schema, recs []arrow.RecordBatch) Object {
	return Object{Schema: schema, Batches: recs}
}

// Blob returns a blob object.
func Blob(b []byte) Object { return Object{Blob: b} }

// StreamBytes returns a stream object: b holds an Arrow IPC stream.
func StreamBytes(b []byte) Object { return Object{Stream: b} }

// IsBlob reports whether o is a blob.
func (o Object) IsBlob() bool { return o.Schema == nil && o.Stream == nil }

// IsStream reports whether o holds its data as the bytes of an IPC stream.
func (o Object) IsStream() bool { return o.Stream != nil }

// Rows is the number of rows over all batches; a blob has none, and
// neither has a stream held as bytes (the store does not parse it).
func (o Object) Rows() int64 {
	var n int64
	for _, rec := range o.Batches {
		n += rec.NumRows()
	}
	return n
}

// Size is what o counts against the memory bound: the bytes of every
// buffer its batches reference (a buffer shared by several arrays or
// batches counts once), or the length of the blob or of the stream's bytes.
func (o Object) Size() int64 {
	if o.IsStream() {
		return int64(len(o.Stream))
	}
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
	if o.IsStream() {
		if o.Schema != nil || len(o.Batches) != 0 || o.Blob != nil {
			return fmt.Errorf("%w: a stream held as bytes has no schema, batches or blob besides", ErrInvalidObject)
		}
		return nil
	}
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

// retain adds a reference to every batch, and a holder to the hook, and
// returns o.
func (o Object) retain() Object {
	for _, rec := range o.Batches {
		rec.Retain()
	}
	if o.hook != nil {
		o.hook.holders.Add(1)
	}
	return o
}

// release drops the references retain added. When it drops the hook's
// last holder it returns the hook's function, which the caller calls once
// it has let go of the store's lock; else nil.
func (o Object) release() (free func()) {
	for _, rec := range o.Batches {
		rec.Release()
	}
	if o.hook != nil {
		switch n := o.hook.holders.Add(-1); {
		case n == 0:
			return o.hook.free
		case n < 0:
			panic("objectstore: an object's release hook lost count of its holders")
		}
	}
	return nil
}

// withHook moves o.Free into a hook with no holders yet; the store's
// retain adds the first.
func (o Object) withHook() Object {
	if o.Free != nil {
		o.hook = &hook{free: o.Free}
		o.Free = nil
	}
	return o
}
