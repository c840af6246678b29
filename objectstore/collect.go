// Collecting an object's batches as they arrive, within the store's
// memory.
package objectstore

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
)

// Collector gathers the batches of one object as a client sends them, and
// refuses them as soon as they outgrow the store's memory, before the rest
// arrives. It belongs to one goroutine; Release drops its batches.
type Collector struct {
	s      *Store
	schema *arrow.Schema
	recs   []arrow.RecordBatch
	size   int64 // Object.Size of each batch, summed
	rows   int64
}

// Collect starts collecting an object of schema.
func (s *Store) Collect(schema *arrow.Schema) Collector {
	return Collector{s: s, schema: schema}
}

// Add retains rec (of the object's schema) as the object's next batch. It
// fails with ErrOverCapacity once the batches added outgrow the store's
// memory; rec is retained even then.
func (c *Collector) Add(rec arrow.RecordBatch) error {
	rec.Retain()
	c.recs = append(c.recs, rec)
	c.rows += rec.NumRows()
	c.size += Batches(c.schema, c.recs[len(c.recs)-1:]).Size()
	if err := checkSize("", c.size, c.s.cfg.MemoryBytes); err != nil {
		return fmt.Errorf("at batch %d: %w", len(c.recs)-1, err)
	}
	return nil
}

// Rows is the number of rows added.
func (c *Collector) Rows() int64 { return c.rows }

// Put stores the batches added as one object, as Store.Put does.
func (c *Collector) Put(ctx context.Context) (*Handle, error) {
	return c.s.Put(ctx, Batches(c.schema, c.recs))
}

// PutCopy stores the batches added as a copy of the object id that
// another node owns, as Store.PutCopy does.
func (c *Collector) PutCopy(ctx context.Context, id ID) (*Handle, error) {
	return c.s.PutCopy(ctx, id, Batches(c.schema, c.recs))
}

// Release drops the collector's references to its batches; the store
// holds its own once Put returned.
func (c *Collector) Release() {
	for _, rec := range c.recs {
		rec.Release()
	}
	c.recs = nil
}
