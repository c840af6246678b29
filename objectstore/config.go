// Config of a store, with its defaults and checks.
package objectstore

import (
	"errors"
	"fmt"
	"os"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Defaults of Config.
const (
	DefaultHighWater      = 0.8
	DefaultSpillFileBytes = 64 << 20
)

// Config says how much a store holds in memory and where it spills.
type Config struct {
	// MemoryBytes bounds, in bytes, the objects held in memory by the
	// store's own accounting (Object.Size of each object in memory, plus
	// the room reserved for objects being read back from disk). It is never
	// exceeded: a Put waits for spilling, or fails with ErrOverCapacity.
	// Zero means DefaultMemoryBytes(): 30% of this machine's memory.
	MemoryBytes int64
	// HighWater is the fraction of MemoryBytes past which the store spills
	// the least recently used objects in the background, so that puts find
	// room without waiting. Zero means 0.8; it must lie in (0, 1].
	HighWater float64
	// SpillDir is where spill files go; the store makes a private
	// directory inside it and removes it on Close. Empty means
	// os.TempDir().
	SpillDir string
	// SpillFileBytes: objects are appended to one spill file until it holds
	// at least this many bytes (compressed), then a new file starts. Zero
	// means 64 MiB.
	SpillFileBytes int64
	// Mem allocates the batches of objects read back from disk, and what
	// compressed batches of an adopted file inflate to while it is
	// checked. Nil means memory.DefaultAllocator.
	Mem memory.Allocator
	// ShmDir is the directory (DefaultShmParent, say) in which the store
	// makes its private shared-memory directory, from which Adopt takes
	// files; the store removes it on Close. Empty means none: Adopt fails
	// with ErrNoShm. Where it cannot be made, the store logs why and
	// serves without one.
	ShmDir string
	// Owner is this node's owner tag (NewOwnerTag): the ids the store makes
	// name it (NewOwnedID), so that other nodes pull the objects from here.
	// Empty means plain ids. It must be a valid tag.
	Owner string
}

func (c *Config) validate() error {
	if c.MemoryBytes < 0 || c.SpillFileBytes < 0 {
		return errors.New("objectstore: negative size in Config")
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = DefaultMemoryBytes()
	}
	if c.HighWater == 0 {
		c.HighWater = DefaultHighWater
	}
	if !(c.HighWater > 0 && c.HighWater <= 1) {
		return fmt.Errorf("objectstore: HighWater %v: want a fraction in (0, 1]", c.HighWater)
	}
	if c.SpillDir == "" {
		c.SpillDir = os.TempDir()
	}
	if c.SpillFileBytes == 0 {
		c.SpillFileBytes = DefaultSpillFileBytes
	}
	if c.Owner != "" && !ValidOwnerTag(c.Owner) {
		return fmt.Errorf("objectstore: Owner %q: want %d lower-case hex digits", c.Owner, OwnerTagLen)
	}
	if c.Mem == nil {
		c.Mem = memory.DefaultAllocator
	}
	return nil
}

// highWaterBytes is HighWater of MemoryBytes, in bytes.
func (c *Config) highWaterBytes() int64 {
	return int64(float64(c.MemoryBytes) * c.HighWater)
}
