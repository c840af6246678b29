// Tests of published objects (the references clients hold by id) and of
// collecting an object's batches.
package objectstore

import (
	"errors"
	"testing"
)

func TestPublish(t *testing.T) {
	ctx := testCtx(t)
	s, mem := openStore(t, Config{MemoryBytes: 1 << 20})
	in := genBatches(mem, 1, 10_000)
	h, err := s.Put(ctx, in)
	for _, rec := range in.Batches {
		rec.Release() // the store holds its own
	}
	if err != nil {
		t.Fatal(err)
	}
	id := h.ID()
	if err := s.Publish(h, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	reader, err := s.AcquirePublished(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unpublish(id); err != nil {
		t.Fatal(err)
	}
	// A reader still holds it, but it is no longer published.
	if _, err := s.AcquirePublished(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AcquirePublished after Unpublish: %v, want ErrNotFound", err)
	}
	if err := s.Unpublish(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a second Unpublish: %v, want ErrNotFound", err)
	}
	reader.Release()
	if st := s.Stats(); st.Objects != 0 {
		t.Fatalf("after the last reference: %+v", st)
	}

	// An answer that fails drops the reference: the client never learnt the id.
	h, err = s.Put(ctx, genBlob(2, 100))
	if err != nil {
		t.Fatal(err)
	}
	failed := errors.New("the client went away")
	if err := s.Publish(h, func() error { return failed }); !errors.Is(err, failed) {
		t.Fatalf("Publish with a failed answer: %v", err)
	}
	if st := s.Stats(); st.Objects != 0 {
		t.Fatalf("the reference of a failed answer is held: %+v", st)
	}
}

func TestPublishBlob(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	id, size, err := s.PublishBlob(ctx, "", []byte("ab"), []byte("cd"))
	if err != nil || len(id) != 32 || size != 4 {
		t.Fatalf("PublishBlob: %q %d %v", id, size, err)
	}
	h, err := s.AcquirePublished(id)
	if err != nil {
		t.Fatal(err)
	}
	if obj, err := h.Pin(ctx); err != nil || string(obj.Blob) != "abcd" {
		t.Fatalf("the blob: %q, %v", obj.Blob, err)
	}
	h.Unpin()
	h.Release()
	if _, _, err := s.PublishBlob(ctx, "mine", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PublishBlob(ctx, "mine", []byte("y")); !errors.Is(err, ErrExists) {
		t.Fatalf("a second blob under a published id: %v, want ErrExists", err)
	}
	if _, _, err := s.PublishBlob(ctx, "big", make([]byte, 600<<10), make([]byte, 600<<10)); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("a blob larger than the store: %v, want ErrOverCapacity", err)
	}
	for _, id := range []ID{id, "mine"} {
		if err := s.Unpublish(id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollector(t *testing.T) {
	ctx := testCtx(t)
	s, mem := openStore(t, Config{MemoryBytes: 1 << 20})
	in := genBatches(mem, 1, 400<<10)
	defer func() {
		for _, rec := range in.Batches {
			rec.Release()
		}
	}()
	c := s.Collect(testSchema)
	var rows int64
	for _, rec := range in.Batches {
		if err := c.Add(rec); err != nil {
			t.Fatal(err)
		}
		rows += rec.NumRows()
	}
	h, err := c.Put(ctx)
	c.Release()
	if err != nil || c.Rows() != rows {
		t.Fatalf("Put: %v, %d rows of %d", err, c.Rows(), rows)
	}
	readBack(t, ctx, h, in)
	h.Release()

	// Past the store's memory, Add refuses at once.
	c = s.Collect(testSchema)
	defer c.Release()
	var err2 error
	for i := 0; i < 4 && err2 == nil; i++ {
		for _, rec := range in.Batches {
			if err2 = c.Add(rec); err2 != nil {
				break
			}
		}
	}
	if !errors.Is(err2, ErrOverCapacity) {
		t.Fatalf("collecting four times 400 KiB in 1 MiB: %v, want ErrOverCapacity", err2)
	}
}
