// Reading a recording back: the batches of one function, in arrival order.
package record

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Batch is one recorded batch and its index line.
type Batch struct {
	Line
	// T is Line.TNs as a duration.
	T time.Duration
	// Rec is the batch; Recording.Release releases it.
	Rec arrow.RecordBatch
}

// Recording is the recorded input of one function.
type Recording struct {
	// Folder is the function's folder that was read.
	Folder string
	// Batches are sorted by arrival (t_ns, then call and seq).
	Batches []Batch
	// Missing counts index lines whose batch is not on disk: the call was
	// deleted to keep the recording under its bound, or its stream was cut
	// short (the node was killed).
	Missing int
}

// Release releases every batch.
func (r *Recording) Release() {
	for _, b := range r.Batches {
		b.Rec.Release()
	}
	r.Batches = nil
}

// Load reads the recording of a function. dir is either the function's
// folder (it holds index.jsonl; function is then not needed) or the
// recording's root, where the folder of function is looked up. Batches are
// allocated from mem (nil: memory.DefaultAllocator).
func Load(dir, function string, mem memory.Allocator) (*Recording, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	folder := dir
	if _, err := os.Stat(filepath.Join(dir, IndexName)); err != nil {
		if function == "" {
			return nil, fmt.Errorf("record: %s has no %s: give the function's folder, or the recording's root and the function", dir, IndexName)
		}
		folder = filepath.Join(dir, FolderName(function))
		if _, err := os.Stat(filepath.Join(folder, IndexName)); err != nil {
			return nil, fmt.Errorf("record: no recording of %q in %s (no %s)", function, dir, filepath.Join(FolderName(function), IndexName))
		}
	}
	lines, _, err := readIndex(filepath.Join(folder, IndexName))
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	byFile := map[string][]Line{}
	for _, ln := range lines {
		byFile[ln.File] = append(byFile[ln.File], ln.Line)
	}
	rec := &Recording{Folder: folder}
	for file, ls := range byFile {
		sort.Slice(ls, func(i, j int) bool { return ls[i].Seq < ls[j].Seq })
		got, err := readStream(folder, file, ls, mem)
		rec.Batches = append(rec.Batches, got...)
		if err != nil {
			rec.Release()
			return nil, err
		}
		rec.Missing += len(ls) - len(got)
	}
	sort.Slice(rec.Batches, func(i, j int) bool {
		a, b := rec.Batches[i], rec.Batches[j]
		if a.TNs != b.TNs {
			return a.TNs < b.TNs
		}
		if a.Call != b.Call {
			return a.Call < b.Call
		}
		return a.Seq < b.Seq
	})
	return rec, nil
}

// readStream reads the batches of one stream file, matched in order with
// its index lines. A missing file gives none; a stream cut short gives the
// batches before the cut.
func readStream(folder, file string, lines []Line, mem memory.Allocator) ([]Batch, error) {
	if filepath.Base(file) != file {
		return nil, fmt.Errorf("record: index line names %q, not a file of %s", file, folder)
	}
	f, err := os.Open(filepath.Join(folder, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	defer f.Close()
	rdr, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20), ipc.WithAllocator(mem))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil // cut before the first batch was flushed
		}
		return nil, fmt.Errorf("record: %s: %w", filepath.Join(folder, file), err)
	}
	defer rdr.Release()
	var out []Batch
	for _, ln := range lines {
		if !rdr.Next() {
			break
		}
		r := rdr.RecordBatch()
		if r.NumRows() != ln.Rows {
			return out, fmt.Errorf("record: %s: batch seq %d has %d rows, its index line says %d", filepath.Join(folder, file), ln.Seq, r.NumRows(), ln.Rows)
		}
		r.Retain()
		out = append(out, Batch{Line: ln, T: time.Duration(ln.TNs), Rec: r})
	}
	return out, nil
}
