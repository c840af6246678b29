// The core's accounting as a snapshot (Stats), and its invariants.
package objectstore

import "fmt"

// Stats is a snapshot of a store.
type Stats struct {
	// Objects is the number of live objects, in memory or on disk.
	Objects int `json:"objects"`
	// MemoryBytes is the store's accounting of memory (objects held and
	// room reserved for restores); it never exceeds MemoryLimitBytes.
	MemoryBytes int64 `json:"memory_bytes"`
	// MemoryLimitBytes is Config.MemoryBytes.
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	// MemoryPeakBytes is the highest MemoryBytes since the store started.
	MemoryPeakBytes int64 `json:"memory_peak_bytes"`
	// SpilledObjects and SpilledBytes: objects only on disk, and their size
	// in memory.
	SpilledObjects int   `json:"spilled_objects"`
	SpilledBytes   int64 `json:"spilled_bytes"`
	// SpillFiles and SpillFileBytes: files on disk and their compressed
	// bytes, freed objects' segments included until the file is deleted.
	SpillFiles     int   `json:"spill_files"`
	SpillFileBytes int64 `json:"spill_file_bytes"`
	// Waiting is the number of puts and restores waiting for room.
	Waiting int `json:"waiting"`
	// SpillsTotal counts objects written to disk, RestoresTotal objects
	// read back, DropsTotal objects taken out of memory that had a copy
	// on disk already (no write).
	SpillsTotal   int64 `json:"spills_total"`
	RestoresTotal int64 `json:"restores_total"`
	DropsTotal    int64 `json:"drops_total"`
	// PullsTotal counts copies of other nodes' objects stored here
	// (PutCopy), PulledBytesTotal their bytes as the store counts them.
	PullsTotal       int64 `json:"pulls_total"`
	PulledBytesTotal int64 `json:"pulled_bytes_total"`
	// SpillWrittenBytesTotal and SpillReadBytesTotal: compressed bytes
	// written to spill files and read back from them.
	SpillWrittenBytesTotal int64 `json:"spill_written_bytes_total"`
	SpillReadBytesTotal    int64 `json:"spill_read_bytes_total"`
	// ShmBytes is the size of the shared-memory files whose mappings are
	// objects now (adopted, part of MemoryBytes).
	ShmBytes int64 `json:"shm_bytes"`
}

func (c *core) stats() Stats {
	s := Stats{Objects: len(c.objs), MemoryBytes: c.used, MemoryLimitBytes: c.bound, MemoryPeakBytes: c.peak,
		SpillFiles: len(c.files), Waiting: len(c.queue), SpillsTotal: c.spills, RestoresTotal: c.restores,
		DropsTotal: c.drops, SpillWrittenBytesTotal: c.spillWritten, SpillReadBytesTotal: c.spillRead}
	for _, m := range c.objs {
		if m.state == stateDisk {
			s.SpilledObjects++
			s.SpilledBytes += m.size
		}
	}
	for _, f := range c.files {
		s.SpillFileBytes += f.size
	}
	return s
}

// check verifies the core's invariants; tests call it after every step.
func (c *core) check() error {
	var used int64
	inMem := 0
	live := make(map[int]int)
	for id, m := range c.objs {
		if m.id != id || m.freed || m.refs <= 0 || m.pins < 0 {
			return fmt.Errorf("object %s: id %s freed=%v refs=%d pins=%d", id, m.id, m.freed, m.refs, m.pins)
		}
		switch m.state {
		case stateMemory, stateWriting:
			used += m.size
			inMem++
			if m.lru == nil {
				return fmt.Errorf("object %s in memory but not in the LRU list", id)
			}
		case stateReading:
			used += m.size
		case stateDisk:
			if !m.onDisk {
				return fmt.Errorf("object %s on disk without a copy", id)
			}
		}
		if m.onDisk {
			live[m.seg.file]++
		}
	}
	if used != c.used || c.used > c.bound || c.used < 0 {
		return fmt.Errorf("used %d, objects add up to %d, bound %d", c.used, used, c.bound)
	}
	if inMem != c.lru.Len() {
		return fmt.Errorf("%d objects in memory, %d in the LRU list", inMem, c.lru.Len())
	}
	for n, f := range c.files {
		if f.live != live[n] {
			return fmt.Errorf("file %d: live %d, objects in it %d", n, f.live, live[n])
		}
	}
	return nil
}
